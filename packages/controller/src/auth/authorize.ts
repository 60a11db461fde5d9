import { FerryError, type Scope } from "@ferry/core";

/** Who a call comes from: the token's name and what it may do. */
export interface Principal {
  name: string;
  scopes: readonly Scope[];
  /** deploy only: hosts carrying one of these tags; empty: any host. */
  tags: readonly string[];
  /** deploy only: rollouts of one of these environments; empty: any, and direct deploys. */
  environments: readonly string[];
}

/** An endpoint that needs a valid operator token and no particular scope (GetInfo). */
export const ANY_TOKEN = "any-token";
export type Requirement = Scope | typeof ANY_TOKEN;

/** What a deploy acts on: each host with its tags, and the rollout's environment (undefined for a direct deploy or dry run). */
export interface DeployTarget {
  hosts: readonly { name: string; tags: readonly string[] }[];
  environment?: string;
}

const list = (items: readonly string[]): string => items.join(", ") || "none";

/**
 * The one authorization check, for gRPC calls and HTTP requests alike:
 * refuses (E_SCOPE, naming what is missing) unless the token holds the scope
 * — `admin` holds them all — and, for `deploy` with a target, unless the
 * token's tag and environment limits admit every host and the environment.
 */
export function authorize(principal: Principal, required: Requirement, target?: DeployTarget): void {
  if (required === ANY_TOKEN || principal.scopes.includes("admin")) return;
  if (!principal.scopes.includes(required)) {
    throw new FerryError("E_SCOPE", `token ${JSON.stringify(principal.name)} lacks the ${required} scope (it holds: ${list(principal.scopes)})`);
  }
  if (required !== "deploy" || !target) return;
  if (principal.tags.length > 0) {
    const outside = target.hosts.find((host) => !host.tags.some((tag) => principal.tags.includes(tag)));
    if (outside) {
      throw new FerryError(
        "E_SCOPE",
        `token ${JSON.stringify(principal.name)} may deploy only to hosts tagged ${list(principal.tags)}; ${outside.name} carries ${list(outside.tags)}`,
      );
    }
  }
  if (principal.environments.length > 0 && !principal.environments.includes(target.environment ?? "")) {
    throw new FerryError(
      "E_SCOPE",
      `token ${JSON.stringify(principal.name)} may deploy only rollouts of environment ${list(principal.environments)}; ` +
        (target.environment === undefined
          ? "a direct deploy has none (use ferry rollout start --environment ENV)"
          : `this one is ${JSON.stringify(target.environment)}`),
    );
  }
}
