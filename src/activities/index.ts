export * from './audit';
export * from './control';
export * from './escalation';
export * from './host';
export * from './prometheus';
export * from './service-manager';
