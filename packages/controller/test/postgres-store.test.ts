// The store contract against a real PostgreSQL: a throw-away cluster (Debian's
// postgresql, started by test/harness/postgres.ts), one database per test.
import { after, before, describe } from "node:test";
import { openPostgresStore } from "../src/store/open-store.js";
import { findPostgres, startPostgres, type PostgresCluster } from "../../../test/harness/postgres.js";
import { storeContract, type ContractBackend } from "./store-contract.js";
import { recordsContract } from "./store-contract-records.js";

const found = findPostgres();

describe("PostgreSQL store", { skip: "skip" in found ? found.skip : false }, () => {
  let cluster: PostgresCluster | undefined;
  let databases = 0;
  before(async () => {
    cluster = await startPostgres({ fast: true });
  });
  after(() => cluster?.stop());

  const backend: ContractBackend = {
    name: "PostgreSQL",
    async open(file?: string) {
      const url = file ?? (await (cluster as PostgresCluster).createDatabase(`contract_${++databases}`));
      return { store: await openPostgresStore(url), file: url };
    },
  };
  storeContract(backend);
  recordsContract(backend);
});
