// Workflow entry point for the worker bundle: workflow functions only.
export { selfhealService } from './service';
export { selfhealFleet } from './fleet';
