/** The worker-thread side of startLatencyProxyInWorker: one proxy, driven by messages. */
import { parentPort, workerData } from "node:worker_threads";
import { startLatencyProxy, type LatencyProxyOptions } from "./latency-proxy.js";

const port = parentPort!;
const proxy = await startLatencyProxy(workerData as LatencyProxyOptions);
port.on("message", (m: { id: number; op: string }) => {
  const reply = (value: unknown): void => port.postMessage({ id: m.id, value });
  switch (m.op) {
    case "address":
      reply({ port: proxy.port });
      break;
    case "stats":
      reply(proxy.stats());
      break;
    case "reset":
      proxy.resetStats();
      reply(undefined);
      break;
    case "stop":
      void proxy.stop().then(() => reply(undefined));
      break;
    default:
      reply(undefined);
  }
});
