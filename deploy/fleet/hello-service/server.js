// A tiny HTTP service for the example fleet: the agent's health check calls
// /healthz after every activation.
import { createServer } from "node:http";

const port = Number(process.env.PORT ?? 8080);
const environment = process.env.FLEET_ENVIRONMENT ?? "unknown";

const server = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok\n");
    return;
  }
  res.writeHead(200, { "content-type": "text/plain" });
  res.end(`hello from ${environment}\n`);
});

server.listen(port, () => {
  console.log(`hello-service (${environment}) listening on :${port}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
