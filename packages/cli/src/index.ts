export { parseTarget } from "./commands/deploy.js";
