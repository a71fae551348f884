// Moved to views/dashboardHtml.ts. This re-export only keeps api/app.ts's import working
// until that line points at views; delete it then.
export { dashboardHtml } from "../views/dashboardHtml.ts";
