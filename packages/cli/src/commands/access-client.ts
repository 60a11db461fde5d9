import { credentials, type Metadata, type ServiceError } from "@grpc/grpc-js";
import { AccessServiceClient } from "@ferry/protocol";
import { toCliError, type OperatorConnection } from "../client.js";

/**
 * The AccessService over the connection's own channel, so it reaches the same
 * address with the same transport security. grpc-js ignores the credentials
 * argument when given a channel.
 */
export function accessClient(connection: OperatorConnection): AccessServiceClient {
  return new AccessServiceClient(connection.address, credentials.createInsecure(), { channelOverride: connection.client.getChannel() });
}

/** One unary AccessService call with the connection's token and a 30 s deadline. */
export function accessCall<Req, Res>(
  connection: OperatorConnection,
  client: AccessServiceClient,
  method: (request: Req, metadata: Metadata, options: { deadline: Date }, callback: (error: ServiceError | null, response: Res) => void) => unknown,
  request: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, connection.metadata(), { deadline: new Date(Date.now() + 30_000) }, (error, response) =>
      error ? reject(toCliError(error)) : resolve(response),
    );
  });
}
