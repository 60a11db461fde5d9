import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mustExec } from "./exec.js";

export interface IssuedCert {
  certFile: string;
  keyFile: string;
}

export interface ServerCertOptions {
  /** subjectAltName IP addresses. */
  ips?: string[];
  /** subjectAltName DNS names. */
  dns?: string[];
  /** Negative: a certificate that expired that many days ago. */
  days?: number;
}

/**
 * A certificate authority made with Debian's `openssl` CLI for one test run:
 * a self-signed root and the server and client certificates it signs. Keys
 * are P-256, which keeps generation fast.
 */
export class TestCa {
  readonly certFile: string;
  private readonly keyFile: string;
  private serial = 1;

  private constructor(
    readonly dir: string,
    readonly name: string,
  ) {
    this.certFile = join(dir, `${name}.crt`);
    this.keyFile = join(dir, `${name}.key`);
  }

  static async create(dir: string, name = "ferry-test-ca"): Promise<TestCa> {
    mkdirSync(dir, { recursive: true });
    const ca = new TestCa(dir, name);
    await mustExec([
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      ca.keyFile,
      "-out",
      ca.certFile,
      "-days",
      "30",
      "-subj",
      `/CN=${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    return ca;
  }

  /** A server certificate for the given names; `days: -1` makes one that has already expired. */
  issueServer(name: string, options: ServerCertOptions = {}): Promise<IssuedCert> {
    const alt = [...(options.ips ?? []).map((ip) => `IP:${ip}`), ...(options.dns ?? []).map((dns) => `DNS:${dns}`)];
    return this.issue(
      name,
      ["basicConstraints=CA:FALSE", "keyUsage=digitalSignature", "extendedKeyUsage=serverAuth", `subjectAltName=${alt.join(",")}`],
      options.days ?? 7,
    );
  }

  /** A client certificate whose common name is `name` (an operator or a host). */
  issueClient(name: string): Promise<IssuedCert> {
    return this.issue(name, ["basicConstraints=CA:FALSE", "keyUsage=digitalSignature", "extendedKeyUsage=clientAuth"], 7);
  }

  private async issue(name: string, extensions: string[], days: number): Promise<IssuedCert> {
    const base = join(this.dir, `${this.name}-${name}-${this.serial}`);
    const serial = this.serial++;
    const keyFile = `${base}.key`;
    const certFile = `${base}.crt`;
    const extFile = `${base}.ext`;
    writeFileSync(extFile, `${extensions.join("\n")}\n`);
    await mustExec([
      "openssl",
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      `${base}.csr`,
      "-subj",
      `/CN=${name}`,
    ]);
    await mustExec([
      "openssl",
      "x509",
      "-req",
      "-in",
      `${base}.csr`,
      "-CA",
      this.certFile,
      "-CAkey",
      this.keyFile,
      "-set_serial",
      String(serial),
      "-days",
      String(days),
      "-extfile",
      extFile,
      "-out",
      certFile,
    ]);
    return { certFile, keyFile };
  }
}
