import { refreshNotYetAvailable } from '../src/app/status.js';

export const handler = async () => {
  const report = refreshNotYetAvailable();
  console.log(JSON.stringify({ level: 'warn', msg: 'refresh', ...report }));
  return report;
};
