"""The world the model walks in: one policy with two file regions (west, east), a SoftHSM origin
(hsm) and a SoftHSM escrow (escrow), one emulated Azure Key Vault (vault), a secret replica
(bucket, a file store) with its password store (passwords), all under one scratch directory;
and the keyplane command run against it, through the policy, a symlink to it or a copy of it in
another directory (three lock paths for one set of stores).
"""

import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))

from azure_keyvault import vaultctl  # noqa: E402
from common import emuctl  # noqa: E402

CHAIN = "tde"
ALG = "RSA-OAEP"            # SoftHSM 2.6.1 has no OAEP with SHA-256
RETENTION = 20              # seconds: some retires are refused, some go through
REGIONS = ("west", "east")
HSMS = ("hsm", "escrow")    # token labels equal the instance names
KEYSTORES = ("west", "east", "vault", "escrow", "hsm")   # failover order: replicas, escrow, origin
FILE_STORES = ("west", "east", "bucket", "passwords")
SECRET_REPLICA = "bucket"
PASSWORDS = "passwords"
COMMAND_TIMEOUT = 180

SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so",
                   "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                   "/usr/lib64/pkcs11/libsofthsm2.so")


class SetupError(Exception):
    pass


class Result:
    """One finished keyplane run."""

    def __init__(self, argv, rc, out, err, secs, killed=False):
        self.argv, self.rc, self.out, self.err, self.secs = argv, rc, out, err, secs
        self.killed = killed
        self.cpu = 0.0

    def crashed(self):
        """Died of a signal we did not send, or said 'internal error'."""
        if self.rc == "timeout":
            return True
        return (self.rc < 0 and not self.killed) or self.rc == 9

    def lsan_tracer_crash(self):
        """An ASan build's LeakSanitizer crashed in its own exit-time tracer, after keyplane had
        finished (it reads a stale dynamic-TLS range left by a dlclose'd library; seen about
        once in 150 runs that use the escrow token): not keyplane's fault."""
        return (self.rc == -6 and "LeakSanitizer has encountered a fatal error" in self.err
                and "ERROR: AddressSanitizer" not in self.err
                and "detected memory leaks" not in self.err)

    def text(self, limit=4000):
        def cut(s):
            return s if len(s) <= limit else s[:limit] + "... (%d more bytes)" % (len(s) - limit)
        return "$ %s\n  exit %s%s in %.2fs\n  stdout: %s\n  stderr: %s" % (
            " ".join(self.argv), self.rc, " (killed by the model)" if self.killed else "",
            self.secs, cut(self.out.strip()), cut(self.err.strip()))


def _child_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def find_keyplane(build):
    for rel in ("bin/keyplane", "core/cli/keyplane"):
        p = os.path.join(build, rel)
        if os.access(p, os.X_OK):
            return os.path.abspath(p)
    raise SetupError("no keyplane binary under %s (bin/keyplane)" % build)


def find_softhsm():
    for m in SOFTHSM_MODULES:
        if os.path.exists(m):
            return m
    raise SetupError("libsofthsm2.so not found (install softhsm2)")


class World:
    def __init__(self, build, keep=False):
        self.kp = find_keyplane(build)
        self.module = find_softhsm()
        self.keep = keep
        self.T = tempfile.mkdtemp(prefix="kp-model-", dir=os.environ.get("TMPDIR"))
        os.chmod(self.T, 0o700)
        self.vdir = os.path.join(self.T, "vaults")
        self.policy = os.path.join(self.T, "policy.yaml")
        self.link = os.path.join(self.T, "link.yaml")
        self.copy = os.path.join(self.T, "other", "policy.yaml")
        self.pin = secrets.token_hex(4)
        self.passphrase = secrets.token_hex(16)
        self.env = dict(os.environ)
        self.env.update({"SOFTHSM2_CONF": os.path.join(self.T, "softhsm2.conf"),
                         "KP_MODEL_PIN": self.pin, "KP_MODEL_PASS": self.passphrase,
                         "AZ_SECRET": "kp-secret", "LC_ALL": "C"})
        self.env.pop("KEYPLANE_POLICY", None)
        self.vault_url = None
        self.log = []            # the Results of the current step
        self.sanitizer_faults = []   # commands run again after LeakSanitizer itself crashed
        self.init_cmd = None     # how this build initialises a file store (None: no 'init')

    # ---- paths ----
    def store_dir(self, name):
        return os.path.join(self.T, name)

    def away_dir(self, name):
        """Where a store's directory goes while it is 'moved away'."""
        return os.path.join(self.T, "away", name)

    def ca(self):
        return os.path.join(self.vdir, "pki", "ca.pem")

    def vault_state(self):
        return os.path.join(self.vdir, "vault.state")

    # ---- setup and teardown ----
    def setup(self):
        os.makedirs(os.path.join(self.T, "tokens"))
        os.makedirs(os.path.join(self.T, "away"))
        os.makedirs(os.path.dirname(self.copy))
        with open(self.env["SOFTHSM2_CONF"], "w") as f:
            f.write("directories.tokendir = %s/tokens\nobjectstore.backend = file\n"
                    "log.level = ERROR\n" % self.T)
        for label in HSMS:
            self._sh(["softhsm2-util", "--init-token", "--free", "--label", label,
                      "--so-pin", "so-" + self.pin, "--pin", self.pin])
        self.vault_start(fresh=True)
        text = self.policy_text()
        for p in (self.policy, self.copy):
            with open(p, "w") as f:
                f.write(text)
        os.symlink(self.policy, self.link)
        with open(os.path.join(self.T, "model.env"), "w") as f:   # to poke at a kept world
            f.write("export SOFTHSM2_CONF=%s KP_MODEL_PIN=%s KP_MODEL_PASS=%s AZ_SECRET=%s\n"
                    % (self.env["SOFTHSM2_CONF"], self.pin, self.passphrase,
                       self.env["AZ_SECRET"]))
        r = self.run(["policy", "validate", self.policy])
        if r.rc != 0:
            raise SetupError("the model's policy is invalid:\n" + r.text())
        self.detect_init()
        for name in FILE_STORES:
            self.init_store(name)

    def policy_text(self):
        def filestore(name):
            return ("  %s: {plugin: file, path: %s, passphrase: env:KP_MODEL_PASS, "
                    "kdf_iterations: 10000}\n" % (name, self.store_dir(name)))
        out = "version: 1\nproviders:\n"
        for label in HSMS:
            out += ("  %s: {plugin: pkcs11, module: %s, token: %s, pin: env:KP_MODEL_PIN}\n"
                    % (label, self.module, label))
        for name in FILE_STORES:
            out += filestore(name)
        out += ("  vault:\n    plugin: azure-keyvault\n    vault_url: %s\n"
                "    tenant: %s\n    client_id: kp-client\n    client_secret: env:AZ_SECRET\n"
                "    authority: %s\n    ca_bundle: %s\n    verify_challenge_resource: false\n"
                "    hsm: true\n    max_attempts: 2\n    timeout_ms: 10000\n"
                "    connect_timeout_ms: 2000\n"
                % (self.vault_url, vaultctl.DEFAULT_TENANT, self.vault_url, self.ca()))
        out += ("chains:\n  %s:\n"
                "    protector: {type: rsa, bits: 2048, origin: hsm, exportable: true}\n"
                "    replicas: [west, east, vault]\n    escrow: [escrow]\n"
                "    secret_replicas: [%s]\n    secrets: %s\n    algorithm: %s\n"
                "    retention: %ds\n" % (CHAIN, SECRET_REPLICA, PASSWORDS, ALG, RETENTION))
        return out

    def detect_init(self):
        """Whether this build makes file stores only by 'keyplane init' (issue 11, finding 3)."""
        r = self.run(["init", "--help"], log=False)
        self.init_cmd = None if "unknown command" in r.err else "init"

    def init_store(self, name):
        """Makes a file store as an operator would: 'keyplane init NAME' where the build has it,
        else its directory (an older build makes the rest on the first write)."""
        if self.init_cmd is None:
            os.makedirs(self.store_dir(name), mode=0o700, exist_ok=True)
            return None
        r = self.run([self.init_cmd, name])
        if r.rc != 0:
            raise SetupError("cannot initialise %s:\n%s" % (name, r.text()))
        return r

    def teardown(self):
        try:
            emuctl.stop_all(vaultctl.SPEC, self.vdir, kill=True)
        except Exception:
            pass
        if self.keep:
            print("chain_model: kept %s" % self.T, file=sys.stderr)
        else:
            shutil.rmtree(self.T, ignore_errors=True)

    def _sh(self, argv):
        p = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise SetupError("%s: exit %d: %s" % (" ".join(argv), p.returncode, p.stderr.strip()))
        return p.stdout

    # ---- the vault ----
    def vault_running(self):
        return emuctl.running_port(vaultctl.SPEC, self.vdir, "vault") is not None

    def vault_start(self, fresh=False):
        args = vaultctl.vault_args(vaultctl.DEFAULT_TENANT, [vaultctl.DEFAULT_CLIENT],
                                   purge_protection=True)
        for attempt in range(10):      # the old port may still be in TIME_WAIT, or taken
            try:
                port = emuctl.start(vaultctl.SPEC, self.vdir, "vault", args,
                                    port_reuse=not fresh)
                break
            except emuctl.Failure as e:
                if attempt == 9:
                    raise SetupError("the vault does not start again: %s" % e)
                time.sleep(0.5)
        url = "https://127.0.0.1:%d" % port
        if self.vault_url is not None and url != self.vault_url:
            raise SetupError("the vault came back on another port (%s, was %s)"
                             % (url, self.vault_url))
        self.vault_url = url

    def vault_stop(self):
        emuctl.stop(vaultctl.SPEC, self.vdir, "vault", kill=True)

    # ---- keyplane ----
    def argv(self, args, policy=None):
        return [self.kp, "--policy", policy or self.policy] + list(args)

    def run(self, args, policy=None, timeout=COMMAND_TIMEOUT, log=True):
        r = self._run(args, policy, timeout)
        if r.lsan_tracer_crash():
            # the sanitizer failed, not keyplane (every command the model runs may run again)
            self.sanitizer_faults.append(" ".join(r.argv[3:5]))
            r = self._run(args, policy, timeout)
        if log:
            self.log.append(r)
        return r

    def _run(self, args, policy, timeout):
        argv = self.argv(args, policy)
        t0, c0 = time.monotonic(), _child_cpu()
        try:
            p = subprocess.run(argv, env=self.env, capture_output=True, timeout=timeout,
                               cwd=self.T)
            r = Result(argv, p.returncode, p.stdout.decode(errors="replace"),
                       p.stderr.decode(errors="replace"), time.monotonic() - t0)
        except subprocess.TimeoutExpired as e:
            r = Result(argv, "timeout", (e.stdout or b"").decode(errors="replace"),
                       (e.stderr or b"").decode(errors="replace"), time.monotonic() - t0)
        r.cpu = _child_cpu() - c0
        return r

    def spawn(self, args, policy=None):
        """Starts keyplane in the background; finish() collects it."""
        argv = self.argv(args, policy)
        out = tempfile.TemporaryFile(dir=self.T)
        err = tempfile.TemporaryFile(dir=self.T)
        p = subprocess.Popen(argv, env=self.env, stdout=out, stderr=err, cwd=self.T)
        return (p, argv, out, err, time.monotonic())

    def finish(self, job, kill_after=None):
        """Waits for a spawned run, SIGKILLing it after kill_after seconds (a hang past
        COMMAND_TIMEOUT is killed too and reported as a timeout), and logs it."""
        p, argv, out, err, t0 = job
        rc, killed = None, False
        try:
            p.wait(timeout=kill_after if kill_after is not None else COMMAND_TIMEOUT)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc, killed = (-9, True) if kill_after is not None else ("timeout", False)
        outs = []
        for f in (out, err):
            f.seek(0)
            outs.append(f.read().decode(errors="replace"))
            f.close()
        r = Result(argv, rc, outs[0], outs[1], time.monotonic() - t0, killed=killed)
        self.log.append(r)
        return r
