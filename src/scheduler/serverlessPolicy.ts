/**
 * `serverless` policy: the request-level baseline the reference system was measured against
 * (ServerlessLLM; llama-swap runs the same way). One model resident per device: a device
 * switches models only when none of its requests is running, evicting the one it holds
 * (least recently used first), and a model whose queue waits too long gets a second copy on
 * another device (`scaleOutWaitFraction`). Everything else is the `request` policy: FIFO
 * admission, continuous batching, no request ever preempted. How slow its loads are is the
 * driver's: the simulator can price them at a host link's bandwidth (`--load-gbps`).
 */
import { registerPolicy } from "./Policy.ts";
import { RequestPolicy } from "./requestPolicy.ts";

registerPolicy("serverless", (context) => new RequestPolicy(context, { oneModelPerDevice: true }));
