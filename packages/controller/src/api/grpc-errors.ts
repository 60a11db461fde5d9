import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { FerryError, toFerryError, type ErrorCode } from "@ferry/core";

const STATUS_BY_CODE: Partial<Record<ErrorCode, status>> = {
  E_AUTH: status.UNAUTHENTICATED,
  E_UNKNOWN_HOST: status.NOT_FOUND,
  E_HOST_EXISTS: status.ALREADY_EXISTS,
  E_BAD_STORE_PATH: status.INVALID_ARGUMENT,
  E_BAD_HOST_NAME: status.INVALID_ARGUMENT,
  E_BAD_TAG: status.INVALID_ARGUMENT,
  E_BAD_ARGUMENT: status.INVALID_ARGUMENT,
  E_PATH_NOT_IN_CACHE: status.FAILED_PRECONDITION,
  E_BUSY: status.RESOURCE_EXHAUSTED,
  E_CACHE_UNSIGNED: status.FAILED_PRECONDITION,
  E_CACHE_PATH_IN_USE: status.FAILED_PRECONDITION,
  E_CACHE_GC_RUNNING: status.FAILED_PRECONDITION,
  E_CACHE_UNREACHABLE: status.FAILED_PRECONDITION,
  E_CACHE_BAD_NARINFO: status.FAILED_PRECONDITION,
  E_SCOPE: status.PERMISSION_DENIED,
  E_UNKNOWN_TOKEN: status.NOT_FOUND,
  E_TOKEN_EXISTS: status.ALREADY_EXISTS,
  E_INTENT_MALFORMED: status.INVALID_ARGUMENT,
  E_INTENT_WRONG_HOST: status.INVALID_ARGUMENT,
  E_INTENT_PATH_MISMATCH: status.INVALID_ARGUMENT,
  E_INTENT_MODE_MISMATCH: status.INVALID_ARGUMENT,
  E_INTENT_EXPIRED: status.FAILED_PRECONDITION,
  E_INTENT_VERSION: status.INVALID_ARGUMENT,
  E_NO_PREVIOUS_SYSTEM: status.FAILED_PRECONDITION,
  E_NOT_IN_HISTORY: status.FAILED_PRECONDITION,
  E_GENERATION_UNKNOWN: status.INVALID_ARGUMENT,
};

/** The stable Ferry code travels in a trailer so clients need not parse messages. */
export const ERROR_CODE_TRAILER = "ferry-error-code";

export function toServiceError(error: unknown): Partial<ServiceError> {
  const ferry: FerryError = toFerryError(error);
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_TRAILER, ferry.code);
  return { code: STATUS_BY_CODE[ferry.code] ?? status.INTERNAL, details: ferry.message, metadata };
}
