"""A generated corpus for the secret scrubber: true positives, false-positive traps, and
bulk text for throughput. Shared by tests/adapters/test_secret_scrubber.py and
bench/bench_scrubber.py so that both report recall and FPR from the same data.

Every token is random (seeded ``random.Random``), shaped like the real thing, and set
in the text it leaks through in practice: .env files, shell history, JSON and YAML
config, code, stack traces, logs, HTTP dumps. Nothing here is a real credential.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

T = TypeVar("T")

UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "_-"
BASE32 = UPPER + "234567"
PW_SYMBOLS = "!#^*-_+=?."  # safe unquoted in .env/YAML/CLI: no quotes, spaces, , ; & < > % $
MARKER = re.compile(r"\[REDACTED:([a-z0-9-]+)\]")


@dataclass(frozen=True)
class Positive:
    family: str
    text: str
    secrets: tuple[str, ...]  # raw secrets that must not survive scrubbing
    kinds: tuple[str, ...]  # expected marker kinds, one per redaction, in text order
    keep: tuple[str, ...] = ()  # non-secret parts that must survive


@dataclass(frozen=True)
class Negative:
    category: str
    text: str


class _Result(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def redactions(self) -> int: ...


# ----------------------------------------------------------------------------- tokens


class Gen:
    """Random token shapes, all from one seeded RNG."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def s(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def pick(self, options: Sequence[T]) -> T:
        return self.rng.choice(options)

    def b64(self, nbytes: int) -> str:
        return base64.b64encode(self.rng.randbytes(nbytes)).decode()

    def b64url(self, data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def password(self, quoted: bool = False) -> str:
        style = self.rng.randrange(3)
        if style == 0:  # human: Word + digits + symbol
            word = self.pick(["Sunflower", "Kestrel", "Marmalade", "Orbit", "Tundra", "Velvet", "Harbor", "Quartz"])
            return f"{word}{self.s(PW_SYMBOLS, 1)}{self.rng.randint(10, 9999)}"
        if style == 1:  # generated
            return self.s(ALNUM, 1) + self.s(ALNUM + PW_SYMBOLS, self.rng.randint(11, 23))
        words = ["correct", "horse", "battery", "staple", "lantern", "river", "copper", "meadow"]
        return "-".join(self.rng.sample(words, 3)) + f"-{self.rng.randint(1, 99)}"

    def pem_body(self, first: str, nchars: int, escaped: bool = False) -> str:
        data = first + self.s(B64, nchars - len(first))
        lines = [data[i : i + 64] for i in range(0, len(data), 64)]
        return ("\\n" if escaped else "\n").join(lines)

    def jwt(self) -> str:
        header = {"alg": self.pick(["HS256", "RS256", "ES256"]), "typ": "JWT"}
        payload = {
            "sub": self.uuid(),
            "name": self.pick(["Ada Lovelace", "Grace Hopper", "Linus T"]),
            "iat": self.rng.randint(1_600_000_000, 1_700_000_000),
            "exp": self.rng.randint(1_700_000_000, 1_800_000_000),
            "scope": self.pick(["read write", "admin", "repo:read"]),
        }
        parts = [json.dumps(header, separators=(",", ":")), json.dumps(payload, separators=(",", ":"))]
        return ".".join(self.b64url(p.encode()) for p in parts) + "." + self.b64url(self.rng.randbytes(32))

    def discord_bot(self) -> str:
        user_id = str(self.rng.randint(10**16, 10**19 - 1))
        head = self.b64url(user_id.encode())
        return f"{head}.{self.s(URLSAFE, 6)}.{self.s(URLSAFE, self.rng.randint(27, 38))}"


# --------------------------------------------------------------------------- contexts

# Where a token shows up. `{v}` is a variable name, `{t}` the token. KEYWORD_CONTEXTS
# name the variable next to the value; the others carry the bare token only.
TOKEN_CONTEXTS: tuple[str, ...] = (
    "APP_ENV=production\n{v}={t}\nLOG_LEVEL=info\n",
    '$ export {v}="{t}"\n$ ./scripts/deploy.sh --region eu-west-1\n',
    '{{"service": "billing", "{lv}": "{t}", "retries": 3}}\n',
    "deploy:\n  stage: prod\n  env:\n    {v}: {t}\n  replicas: 2\n",
    "  501  cd ~/src/payments\n  502  {v}={t} make release\n  503  git push origin main\n",
    'client = ApiClient(base_url="https://api.internal.example.org/v2", credential="{t}", timeout=30)\n',
    "[default]\nregion = eu-central-1\n{lv} = {t}\n",
    'Traceback (most recent call last):\n  File "/srv/app/jobs/sync.py", line 88, in run\n'
    '    resp = session.get(url, params={{"auth": "{t}"}})\n'
    '  File "/usr/lib/python3.11/site-packages/requests/sessions.py", line 602, in get\n'
    '    return self.request("GET", url, **kwargs)\n'
    "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: https://api.example.org/v2/items\n",
    "2024-05-03T10:22:41Z WARN auth rejected credential {t} for user=ci-bot ip=10.2.3.4\n",
    "docker run --rm -e {v}={t} -v $(pwd):/work ghcr.io/acme/worker:1.4.2\n",
    'PS C:\\Users\\dev> $env:{v} = "{t}"\nPS C:\\Users\\dev> npm run deploy\n',
    'variable "region" {{ default = "eu-west-1" }}\n{lv} = "{t}"\n',
    "Here is my setup, the deploy fails with 403:\n```\n{v}={t}\nREGION=eu-west-1\n```\nAny idea?\n",
    'env:\n  - name: {v}\n    value: "{t}"\n  - name: LOG_LEVEL\n    value: debug\n',
    'const cfg = {{ endpoint: "https://api.example.org", key: "{t}" }};\n',
)
KEYWORD_CONTEXTS = (0, 1, 2, 3, 4, 6, 9, 10, 11, 12)


def _ctx(i: int, var: str, tok: str) -> str:
    return TOKEN_CONTEXTS[i].format(v=var, lv=var.lower(), t=tok)


def _tokens(
    g: Gen, family: str, kind: str, make: Callable[[], str], names: tuple[str, ...], contexts: tuple[int, ...]
) -> list[Positive]:
    out = []
    for i in contexts:
        tok = make()
        out.append(Positive(family, _ctx(i, g.pick(names), tok), (tok,), (kind,)))
    return out


ALL = tuple(range(len(TOKEN_CONTEXTS)))


# --------------------------------------------------------------------------- families


def _cloud(g: Gen) -> list[Positive]:
    out: list[Positive] = []
    akid = lambda: g.pick(["AKIA", "ASIA"]) + g.s(BASE32, 16)  # noqa: E731
    aws_secret = lambda: g.s(ALNUM, 1) + g.s(B64, 39)  # noqa: E731
    out += _tokens(g, "aws", "aws-access-key", akid, ("AWS_ACCESS_KEY_ID",), ALL)
    for i in KEYWORD_CONTEXTS:
        tok = aws_secret()
        out.append(Positive("aws", _ctx(i, "AWS_SECRET_ACCESS_KEY", tok), (tok,), ("aws-secret-key",)))
    a, s = akid(), aws_secret()
    out.append(
        Positive(
            "aws",
            f"# ~/.aws/credentials\n[prod]\naws_access_key_id = {a}\naws_secret_access_key = {s}\nregion = us-east-1\n",
            (a, s),
            ("aws-access-key", "aws-secret-key"),
            keep=("[prod]", "region = us-east-1"),
        )
    )
    a, s, st = akid(), aws_secret(), g.b64(240)
    sts = {
        "Credentials": {
            "AccessKeyId": a,
            "SecretAccessKey": s,
            "SessionToken": st,
            "Expiration": "2024-05-03T11:22:41Z",
        }
    }
    out.append(
        Positive(
            "aws",
            "$ aws sts assume-role --role-arn arn:aws:iam::123456789012:role/deploy --role-session-name ci\n"
            + json.dumps(sts, indent=4),
            (a, s, st),
            ("aws-access-key", "aws-secret-key", "generic-secret"),
            keep=("arn:aws:iam::123456789012:role/deploy", "2024-05-03T11:22:41Z"),
        )
    )

    gkey = lambda: "AIza" + g.s(URLSAFE, 35)  # noqa: E731
    out += _tokens(g, "gcp", "gcp-api-key", gkey, ("GOOGLE_API_KEY", "MAPS_API_KEY", "FIREBASE_KEY"), ALL)
    for _ in range(3):
        kid, body = g.s(HEX, 40), g.pem_body("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", 1600, escaped=True)
        pem = f"-----BEGIN PRIVATE KEY-----\\n{body}\\n-----END PRIVATE KEY-----\\n"
        sa = (
            '{\n  "type": "service_account",\n  "project_id": "acme-prod-4821",\n'
            f'  "private_key_id": "{kid}",\n  "private_key": "{pem}",\n'
            '  "client_email": "deployer@acme-prod-4821.iam.gserviceaccount.com",\n'
            '  "client_id": "103958172649183746512",\n'
            '  "token_uri": "https://oauth2.googleapis.com/token"\n}\n'
        )
        out.append(
            Positive(
                "gcp",
                sa,
                (kid, body),
                ("gcp-service-account", "gcp-service-account"),
                keep=("deployer@acme-prod-4821.iam.gserviceaccount.com", '"project_id": "acme-prod-4821"'),
            )
        )
    for i in (0, 2, 5):
        tok = "GOCSPX-" + g.s(URLSAFE, 28)
        out.append(Positive("gcp", _ctx(i, "GOOGLE_CLIENT_SECRET", tok), (tok,), ("gcp-oauth-token",)))
    tok = "ya29." + g.s(URLSAFE, 120)
    out.append(
        Positive(
            "gcp",
            f"curl -s 'https://www.googleapis.com/drive/v3/files?access_token={tok}'\n",
            (tok,),
            ("gcp-oauth-token",),
        )
    )

    for i in range(3):
        key = g.b64(64)
        acct = f"acmestore{i}"
        conn = f"DefaultEndpointsProtocol=https;AccountName={acct};AccountKey={key};EndpointSuffix=core.windows.net"
        text = [
            f'AZURE_STORAGE_CONNECTION_STRING="{conn}"\n',
            f'  "ConnectionStrings": {{ "Blob": "{conn}" }}\n',
            f"az storage blob list --connection-string '{conn}' -c logs\n",
        ][i]
        out.append(Positive("azure", text, (key,), ("azure-connection-string",), keep=(f"AccountName={acct}",)))
    for _ in range(2):
        key = g.b64(32)
        conn = f"Endpoint=sb://acme-bus.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={key}"
        out.append(
            Positive(
                "azure",
                f"SERVICEBUS_CONNECTION={conn}\n",
                (key,),
                ("azure-connection-string",),
                keep=("acme-bus.servicebus.windows.net",),
            )
        )
    for _ in range(2):
        sig = g.b64(32).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        url = (
            "https://acmestore.blob.core.windows.net/exports/report.csv?sv=2022-11-02&ss=b&srt=o&sp=r"
            f"&se=2025-01-01T00:00:00Z&st=2024-01-01T00:00:00Z&spr=https&sig={sig}"
        )
        out.append(
            Positive(
                "azure",
                f"Download: {url}\n",
                (sig,),
                ("azure-sas-token",),
                keep=("acmestore.blob.core.windows.net/exports/report.csv",),
            )
        )
    client_secret = lambda: g.s(ALNUM + "_~.", 3) + g.s(DIGITS, 1) + "Q~" + g.s(ALNUM + "_~.-", 34)  # noqa: E731
    out += _tokens(g, "azure", "azure-client-secret", client_secret, ("AZURE_CLIENT_SECRET",), (0, 2, 5, 8))

    out += _tokens(
        g,
        "digitalocean",
        "digitalocean-token",
        lambda: g.pick(["dop", "doo", "dor"]) + "_v1_" + g.s(HEX, 64),
        ("DIGITALOCEAN_TOKEN", "DO_PAT"),
        ALL,
    )
    out += _tokens(
        g,
        "alibaba",
        "alibaba-access-key",
        lambda: "LTAI" + g.s(ALNUM, 20),
        ("ALIBABA_CLOUD_ACCESS_KEY_ID",),
        (0, 2, 5, 7, 8),
    )
    for i in (0, 1, 3):
        tok = g.s(ALNUM, 30)
        var = g.pick(["ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIYUN_SECRET"])
        out.append(Positive("alibaba", _ctx(i, var, tok), (tok,), ("alibaba-secret-key",)))
    return out


def _vcs(g: Gen) -> list[Positive]:
    out: list[Positive] = []
    ghp = lambda: "gh" + g.pick(list("pousr")) + "_" + g.s(ALNUM, 36)  # noqa: E731
    out += _tokens(g, "github", "github-token", ghp, ("GITHUB_TOKEN", "GH_TOKEN"), ALL)
    for i in (0, 5, 8):
        tok = "github_pat_" + g.s(ALNUM, 22) + "_" + g.s(ALNUM, 59)
        out.append(Positive("github", _ctx(i, "GITHUB_PAT", tok), (tok,), ("github-token",)))
    tok = "ghs_" + g.s(ALNUM, 36)
    out.append(
        Positive(
            "github",
            f"git clone https://x-access-token:{tok}@github.com/acme/infra.git\n",
            (tok,),
            ("github-token",),
            keep=("x-access-token:", "@github.com/acme/infra.git"),
        )
    )
    out += _tokens(
        g, "gitlab", "gitlab-token", lambda: "glpat-" + g.s(URLSAFE, 20), ("GITLAB_TOKEN", "CI_JOB_TOKEN_OVERRIDE"), ALL
    )
    out += _tokens(
        g, "bitbucket", "bitbucket-token", lambda: "ATBB" + g.s(ALNUM, 32), ("BITBUCKET_APP_PASSWORD",), (0, 2, 5, 7, 8)
    )
    for i in (0, 1, 3):
        tok = g.s(ALNUM, 32)
        out.append(Positive("bitbucket", _ctx(i, "BITBUCKET_CLIENT_SECRET", tok), (tok,), ("bitbucket-token",)))
    out += _tokens(
        g,
        "atlassian",
        "atlassian-token",
        lambda: "ATATT3xFfGF0" + g.s(URLSAFE, 170) + "=" + g.s(HEX.upper(), 8),
        ("JIRA_API_TOKEN",),
        (0, 5),
    )
    return out


def _chat(g: Gen) -> list[Positive]:
    out: list[Positive] = []
    num = lambda: str(g.rng.randint(10**9, 10**13))  # noqa: E731
    bot = lambda: f"xox{g.pick(list('bpa'))}-{num()}-{num()}-{g.s(ALNUM, 24)}"  # noqa: E731
    out += _tokens(g, "slack", "slack-token", bot, ("SLACK_BOT_TOKEN", "SLACK_TOKEN"), ALL)
    for i in range(3):
        path = f"T{g.s(UPPER + DIGITS, 9)}/B{g.s(UPPER + DIGITS, 10)}/{g.s(ALNUM, 24)}"
        text = [
            f"SLACK_WEBHOOK_URL=https://hooks.slack.com/services/{path}\n",
            f"curl -X POST -H 'Content-type: application/json' --data '{{\"text\":\"deploy ok\"}}' https://hooks.slack.com/services/{path}\n",
            f'  webhook: "https://hooks.slack.com/services/{path}"\n',
        ][i]
        out.append(Positive("slack", text, (path,), ("slack-webhook",), keep=("https://hooks.slack.com/services/",)))

    out += _tokens(
        g, "discord", "discord-token", g.discord_bot, ("DISCORD_BOT_TOKEN", "DISCORD_TOKEN"), (0, 1, 2, 5, 8)
    )
    for _ in range(3):
        wid, secret = str(g.rng.randint(10**17, 10**18)), g.s(URLSAFE, 68)
        out.append(
            Positive(
                "discord",
                f"hook = 'https://discord.com/api/webhooks/{wid}/{secret}'\n",
                (secret,),
                ("discord-webhook",),
                keep=(f"https://discord.com/api/webhooks/{wid}/",),
            )
        )

    tg = lambda: f"{g.rng.randint(10**8, 10**10 - 1)}:AA{g.s(URLSAFE, 33)}"  # noqa: E731
    out += _tokens(g, "telegram", "telegram-bot-token", tg, ("TELEGRAM_BOT_TOKEN", "TG_TOKEN"), (0, 2, 3, 5, 8))
    for _ in range(3):
        tok = tg()
        out.append(
            Positive(
                "telegram",
                f'requests.post(f"https://api.telegram.org/bot{tok}/sendMessage", json=msg)\n',
                (tok,),
                ("telegram-bot-token",),
                keep=("https://api.telegram.org/bot", "/sendMessage"),
            )
        )
    return out


def _payments(g: Gen) -> list[Positive]:
    out: list[Positive] = []
    stripe = lambda: g.pick(["sk_live_", "rk_live_", "sk_test_"]) + g.s(ALNUM, g.pick([24, 99]))  # noqa: E731
    out += _tokens(g, "stripe", "stripe-key", stripe, ("STRIPE_SECRET_KEY", "STRIPE_API_KEY"), ALL)
    tok = "whsec_" + g.s(ALNUM, 32)
    out.append(Positive("stripe", f"STRIPE_WEBHOOK_SECRET={tok}\n", (tok,), ("stripe-key",)))
    square = lambda: g.pick(["EAAA" + g.s(URLSAFE, 60), "sq0atp-" + g.s(URLSAFE, 22), "sq0csp-" + g.s(URLSAFE, 43)])  # noqa: E731
    out += _tokens(g, "square", "square-token", square, ("SQUARE_ACCESS_TOKEN",), (0, 1, 2, 5, 7, 8))
    bt = lambda: f"access_token${g.pick(['production', 'sandbox'])}${g.s(LOWER + DIGITS, 16)}${g.s(HEX, 32)}"  # noqa: E731
    out += _tokens(g, "paypal-braintree", "paypal-braintree-token", bt, ("BRAINTREE_ACCESS_TOKEN",), (0, 2, 5, 8))
    for i in (0, 1, 3):
        tok = "E" + g.s(URLSAFE, 79)
        out.append(
            Positive("paypal-braintree", _ctx(i, "PAYPAL_CLIENT_SECRET", tok), (tok,), ("paypal-braintree-token",))
        )
    out += _tokens(
        g,
        "shopify",
        "shopify-token",
        lambda: g.pick(["shpat_", "shpss_"]) + g.s(HEX, 32),
        ("SHOPIFY_ACCESS_TOKEN",),
        (0, 5, 8),
    )
    return out


def _ai(g: Gen) -> list[Positive]:
    out: list[Positive] = []

    def openai() -> str:
        style = g.rng.randrange(3)
        if style == 0:
            return "sk-proj-" + g.s(URLSAFE, 74) + "T3BlbkFJ" + g.s(URLSAFE, 74)
        if style == 1:
            return "sk-svcacct-" + g.s(URLSAFE, 64)
        return "sk-" + g.s(ALNUM, 20) + "T3BlbkFJ" + g.s(ALNUM, 20)

    out += _tokens(g, "openai", "openai-api-key", openai, ("OPENAI_API_KEY",), ALL)
    out += _tokens(
        g,
        "anthropic",
        "anthropic-api-key",
        lambda: "sk-ant-api03-" + g.s(URLSAFE, 93) + "AA",
        ("ANTHROPIC_API_KEY",),
        ALL,
    )
    out += _tokens(
        g,
        "huggingface",
        "huggingface-token",
        lambda: "hf_" + g.s(string.ascii_letters, 34),
        ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
        ALL,
    )
    for i in KEYWORD_CONTEXTS:
        tok = g.s(ALNUM, 40)
        out.append(
            Positive("cohere", _ctx(i, g.pick(["COHERE_API_KEY", "CO_API_KEY"]), tok), (tok,), ("cohere-api-key",))
        )
    out += _tokens(g, "groq", "groq-api-key", lambda: "gsk_" + g.s(ALNUM, 52), ("GROQ_API_KEY",), ALL)
    out += _tokens(g, "xai", "xai-api-key", lambda: "xai-" + g.s(ALNUM, 80), ("XAI_API_KEY",), (0, 5))
    out += _tokens(
        g, "replicate", "replicate-api-token", lambda: "r8_" + g.s(ALNUM, 37), ("REPLICATE_API_TOKEN",), (0, 5)
    )
    return out


def _registries_and_messaging(g: Gen) -> list[Positive]:
    out: list[Positive] = []
    out += _tokens(g, "npm", "npm-token", lambda: "npm_" + g.s(ALNUM, 36), ("NPM_TOKEN", "NODE_AUTH_TOKEN"), ALL)
    tok = "npm_" + g.s(ALNUM, 36)
    out.append(
        Positive(
            "npm",
            f"registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken={tok}\n",
            (tok,),
            ("npm-token",),
            keep=("//registry.npmjs.org/:_authToken=",),
        )
    )
    pypi = lambda: "pypi-AgEIcHlwaS5vcmc" + g.s(URLSAFE, 140)  # noqa: E731
    out += _tokens(g, "pypi", "pypi-token", pypi, ("PYPI_TOKEN", "TWINE_PASSWORD"), ALL)
    tok = pypi()
    out.append(
        Positive(
            "pypi",
            f"[distutils]\nindex-servers = pypi\n\n[pypi]\nusername = __token__\npassword = {tok}\n",
            (tok,),
            ("pypi-token",),
            keep=("username = __token__",),
        )
    )
    sg = lambda: "SG." + g.s(URLSAFE, 22) + "." + g.s(URLSAFE, 43)  # noqa: E731
    out += _tokens(g, "sendgrid", "sendgrid-api-key", sg, ("SENDGRID_API_KEY",), ALL)
    out += _tokens(g, "twilio", "twilio-api-key", lambda: "SK" + g.s(HEX, 32), ("TWILIO_API_KEY",), (0, 2, 5, 7, 8))
    for i in (0, 1, 3):
        tok = g.s(HEX, 32)
        out.append(Positive("twilio", _ctx(i, "TWILIO_AUTH_TOKEN", tok), (tok,), ("twilio-api-key",)))
    out += _tokens(g, "mailgun", "mailgun-api-key", lambda: "key-" + g.s(HEX, 32), ("MAILGUN_KEY",), (0, 2, 5, 7, 8))
    for i in (0, 1, 3):
        tok = f"{g.s(HEX, 32)}-{g.s(HEX, 8)}-{g.s(HEX, 8)}"
        out.append(Positive("mailgun", _ctx(i, "MAILGUN_API_KEY", tok), (tok,), ("mailgun-api-key",)))
    out += _tokens(g, "vault", "vault-token", lambda: "hvs." + g.s(URLSAFE, 90), ("VAULT_TOKEN",), (0, 1, 5))
    out += _tokens(g, "databricks", "databricks-token", lambda: "dapi" + g.s(HEX, 32), ("DATABRICKS_TOKEN",), (0, 5, 8))
    age = lambda: "AGE-SECRET-KEY-1" + g.s("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L".upper(), 58)  # noqa: E731
    out += _tokens(g, "age", "age-secret-key", age, ("SOPS_AGE_KEY",), (0, 8))
    return out


def _private_keys(g: Gen) -> list[Positive]:
    out: list[Positive] = []
    shapes = [
        ("RSA PRIVATE KEY", "MIIEowIBAAKCAQEA", 1600),
        ("RSA PRIVATE KEY", "MIIJKAIBAAKCAgEA", 3200),
        ("EC PRIVATE KEY", "MHcCAQEEI", 220),
        ("OPENSSH PRIVATE KEY", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW", 400),
        ("OPENSSH PRIVATE KEY", "b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABC", 1800),
        ("PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", 1650),
        ("ENCRYPTED PRIVATE KEY", "MIIFHzBJBgkqhkiG9w0BBQ0wPDAbBgkqhkiG9w0BBQwwDgQI", 1750),
        ("DSA PRIVATE KEY", "MIIBuwIBAAKBgQD", 900),
    ]
    wrappers = [
        "$ cat ~/.ssh/id_key\n{pem}\n$ chmod 600 ~/.ssh/id_key\n",
        'TLS_KEY="{pem}"\n',
        "apiVersion: v1\nkind: Secret\nstringData:\n  tls.key: |\n{indented}\n",
        "```\n{pem}\n```\nThat is the key the job failed to load.\n",
    ]
    for i, (label, first, size) in enumerate(shapes):
        body = g.pem_body(first, size)
        pem = f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"
        indented = "\n".join("    " + line for line in pem.splitlines())
        text = wrappers[i % len(wrappers)].format(pem=pem, indented=indented)
        lines = tuple(body.splitlines())
        out.append(
            Positive(
                "private-key",
                text,
                (lines[0], lines[-1]),
                ("private-key",),
                keep=(f"-----BEGIN {label}-----", f"-----END {label}-----"),
            )
        )
    body = g.pem_body("lQOYBGR", 1400)
    pgp = f"-----BEGIN PGP PRIVATE KEY BLOCK-----\nComment: ops signing key\n\n{body}\n=Xr4a\n-----END PGP PRIVATE KEY BLOCK-----\n"
    out.append(
        Positive(
            "private-key", pgp, (body.splitlines()[3],), ("private-key",), keep=("-----END PGP PRIVATE KEY BLOCK-----",)
        )
    )
    body = g.pem_body("MIIEpAIBAAKCAQEA", 1600, escaped=True)
    text = f'{{"name": "tls", "key": "-----BEGIN RSA PRIVATE KEY-----\\n{body}\\n-----END RSA PRIVATE KEY-----\\n"}}'
    out.append(Positive("private-key", text, (body.split("\\n")[1],), ("private-key",), keep=('"name": "tls"',)))
    body = g.pem_body("MIIEowIBAAKCAQEA", 700)
    text = f"[2024-05-03 10:22:41] loaded key:\n-----BEGIN RSA PRIVATE KEY-----\n{body}\n... (output truncated)\n"
    out.append(Positive("private-key", text, (body.splitlines()[2],), ("private-key",), keep=("(output truncated)",)))
    return out


def _http_and_urls(g: Gen) -> list[Positive]:
    out: list[Positive] = []
    jwt_contexts = [
        "Authorization: Bearer {t}\n",
        "Set-Cookie: session={t}; Path=/; HttpOnly; Secure\n",
        '{{"id_token": "{t}", "expires_in": 3600}}\n',
        "GET /callback?code=ok&state=xyz&jwt={t} HTTP/1.1\n",
        "2024-05-03 12:00:01 DEBUG verifying token {t} against jwks\n",
        'localStorage.setItem("auth", "{t}");\n',
        "curl -H 'Authorization: Bearer {t}' https://api.example.org/me\n",
        "decoded = jwt.decode('{t}', options={{'verify_signature': False}})\n",
    ]
    for c in jwt_contexts:
        t = g.jwt()
        out.append(Positive("jwt", c.format(t=t), (t,), ("jwt",)))

    users = ["app", "admin", "postgres", "svc_reporting", "deploy", "root"]
    hosts = [
        "db.internal",
        "10.0.4.12",
        "pg-primary.prod.svc.cluster.local",
        "cluster0.ab1cd.mongodb.net",
        "mq.internal",
    ]
    urls = [
        "DATABASE_URL=postgres://{u}:{p}@{h}:5432/app\n",
        "SQLALCHEMY_DATABASE_URI = 'postgresql+psycopg2://{u}:{p}@{h}/analytics'\n",
        '"mongo": "mongodb+srv://{u}:{p}@{h}/prod?retryWrites=true&w=majority"\n',
        "mysql -h {h} -e 'select 1' # mysql://{u}:{p}@{h}:3306/shop\n",
        "amqp://{u}:{p}@{h}:5672/%2F\n",
        "sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server failed\n"
        "(Background on this error at: https://sqlalche.me/e/20/e3q8) url=postgresql://{u}:{p}@{h}:5432/app\n",
        "git remote add origin https://{u}:{p}@{h}/acme/tools.git\n",
        "  url: jdbc:postgresql://{u}:{p}@{h}:5432/app\n",
        "redis-cli -u redis://{u}:{p}@{h}:6379/0 ping\n",
        "CELERY_BROKER_URL=redis://:{p}@{h}:6379/1\n",
    ]
    for i, c in enumerate(urls * 2):
        u, h = g.pick(users), g.pick(hosts)
        p = g.s(ALNUM, 1) + (g.s(ALNUM + "-_.~!*", g.rng.randint(7, 20)) if i % 2 else g.s(ALNUM, 24))
        keep = (f"{u if '{u}' in c else ''}:[REDACTED:url-password]@{h}",)  # user and host stay
        out.append(Positive("url-password", c.format(u=u, p=p, h=h), (p,), ("url-password",), keep=keep))

    for c in [
        "curl -sS -H 'Authorization: Bearer {t}' https://api.example.org/v1/projects\n",
        "GET /v1/projects HTTP/1.1\nHost: api.example.org\nAuthorization: Bearer {t}\nAccept: */*\n",
        'headers = {{"Authorization": "Bearer {t}", "Content-Type": "application/json"}}\n',
        "fetch(url, {{ headers: {{ Authorization: 'Bearer {t}' }} }})\n",
        "2024-05-03 12:00:01 DEBUG outgoing request headers: authorization=Bearer {t} accept=*/*\n",
        "> authorization: Bearer {t}\n< HTTP/1.1 403 Forbidden\n",
    ]:
        t = g.s(ALNUM, 1) + g.s(ALNUM + "._~-", g.rng.randint(31, 60))
        out.append(Positive("bearer", c.format(t=t), (t,), ("bearer-token",)))
    for c in [
        "curl -H 'Authorization: Basic {t}' https://ci.example.org/api/json\n",
        "Authorization: Basic {t}\n",
        'req.headers["Authorization"] = "Basic {t}"\n',
        "proxy-authorization: basic {t}\n",
    ]:
        t = base64.b64encode(f"{g.pick(users)}:{g.password()}".encode()).decode()
        out.append(Positive("basic-auth", c.format(t=t), (t,), ("basic-auth",)))
    for c in ["Authorization: Token {t}\n", 'headers={{"Authorization": "Token {t}"}}\n', "authorization: token {t}\n"]:
        t = g.s(HEX, 40)
        out.append(Positive("auth-header", c.format(t=t), (t,), ("auth-header",)))
    return out


def _assignments(g: Gen) -> list[Positive]:
    out: list[Positive] = []
    pw_contexts = [
        "DB_HOST=db.internal\nDB_USER=app\nDB_PASSWORD={p}\n",
        'database:\n  host: db.internal\n  user: app\n  password: "{p}"\n',
        'conn = psycopg2.connect(host="db.internal", user="app", password="{p}")\n',
        '{{"username": "svc-backup", "password": "{p}", "host": "10.0.4.12"}}\n',
        "$ mysqldump -u root --password='{p}' prod > dump.sql\n",
        "$ vault-cli login --username admin --password {p}\n",
        "machine api.example.com login alice password {p}\n",
        "<connection>\n  <user>app</user>\n  <password>{p}</password>\n</connection>\n",
        "spring.datasource.password={p}\n",
        'const password = "{p}";\n',
        'cfg := Config{{User: "app", Password: "{p}"}}\n',
        "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: {p}\n",
        'SMTP_PASS="{p}"\n',
        '2024-05-03 12:00:01 DEBUG body="{{\\"user\\": \\"ops\\", \\"password\\": \\"{p}\\"}}"\n',
        "ALTER ROLE app LOGIN; -- rotated: new_password = '{p}'\n",
        'ldap_bind_password: "{p}"\n',
        "keystore.passphrase={p}\n",
        "  File \"/srv/app/db.py\", line 12, in connect\n    return pg.connect(dsn, password='{p}')\npsycopg2.OperationalError: FATAL\n",
        "export PGPASSWORD={p}\n",
        "redis_pwd = '{p}'\n",
    ]
    for c in pw_contexts:
        p = g.password()
        out.append(Positive("password", c.format(p=p), (p,), ("password",)))

    def django() -> str:
        return "django-insecure-" + g.s(ALNUM + "-_=+!", 50)

    secret_contexts: list[tuple[str, Callable[[], str]]] = [
        ('SECRET_KEY = "{s}"\n', django),
        ("oauth:\n  client_id: web-frontend\n  client_secret: {s}\n", lambda: g.s(ALNUM, 32)),
        ('{{"api_key": "{s}", "endpoint": "https://api.vendor.io"}}\n', lambda: g.s(HEX, 32)),
        ("WEBHOOK_SECRET={s}\n", lambda: g.s(ALNUM, 1) + g.b64(32)),
        ("export PAYMENTS_API_TOKEN={s}\n", lambda: g.s(ALNUM, 40)),
        ('const apiKey = "{s}";\n', g.uuid),
        ("signing_key: {s}\n", lambda: g.s(HEX, 64)),
        ('{{"access_token": "{s}", "token_type": "bearer", "expires_in": 3600}}\n', lambda: g.s(ALNUM, 40)),
        ("app.config['SECRET_KEY'] = '{s}'\n", lambda: g.s(ALNUM, 32)),
        (
            'resource "azuread_application_password" "ci" {{\n  client_secret = "{s}"\n}}\n',
            lambda: g.s(ALNUM + "-_", 40),
        ),
        ("stringData:\n  api-token: {s}\n", lambda: g.s(ALNUM, 40)),
        ("$ ./sync --api-key={s} --dry-run\n", lambda: g.s(ALNUM, 32)),
        ("X-Api-Key: {s}\n", lambda: g.s(ALNUM, 32)),
        ("ENV['SECRET_TOKEN'] = '{s}'\n", lambda: g.s(HEX, 48)),
        ("encryption_key = {s}\n", lambda: g.s(ALNUM, 1) + g.b64(32)),
        ("[auth]\nshared_secret = {s}\n", lambda: g.s(ALNUM, 28)),
        ('private static final String API_KEY = "{s}";\n', lambda: g.s(ALNUM, 36)),
        ("refresh_token: {s}\n", lambda: g.s(URLSAFE, 64)),
        ("MASTER_KEY={s}\n", lambda: g.s(HEX, 32)),
        ("credentials = {s}\n", lambda: g.s(ALNUM, 24)),
        ("creds = {s}\n", lambda: g.s(ALNUM, 30)),
        ('{{"user_auth": "{s}"}}\n', lambda: base64.b64encode(f"svc:{g.uuid()}".encode()).decode()),
        ("private-key: {s}\n", lambda: g.s(ALNUM, 12) + "=" + g.s(ALNUM + "-_.=", 80)),
        ("AUTH={s}\n", lambda: g.s(ALNUM, 32)),
    ]
    for c, make in secret_contexts:
        s = make()
        out.append(Positive("generic-secret", c.format(s=s), (s,), ("generic-secret",)))
    return out


def positives(seed: int = 20240503) -> list[Positive]:
    g = Gen(seed)
    return [
        *_cloud(g),
        *_vcs(g),
        *_chat(g),
        *_payments(g),
        *_ai(g),
        *_registries_and_messaging(g),
        *_private_keys(g),
        *_http_and_urls(g),
        *_assignments(g),
    ]


# -------------------------------------------------------------------------- negatives

# Text that looks secret-adjacent but is not a secret. Every line here is a trap some
# scanner falls into: keywords bound to code, placeholders, hashes, ids, public keys.
CODE_NEGATIVES: tuple[str, ...] = (
    'password = os.environ["DB_PASSWORD"]',
    "api_key = settings.OPENAI_API_KEY",
    'token = request.headers.get("Authorization", "").removeprefix("Bearer ")',
    'secret = getpass.getpass("Vault password: ")',
    "def login(username: str, password: str) -> Session:",
    "    password: Optional[str] = None",
    "const token = process.env.GITHUB_TOKEN;",
    'SECRET_KEY = env("DJANGO_SECRET_KEY")',
    'password = "${DB_PASSWORD}"',
    "        token: ${{ secrets.GITHUB_TOKEN }}",
    "max_tokens = 4096",
    'tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")',
    "password_field = forms.CharField(widget=forms.PasswordInput)",
    'if not password:\n    raise ValueError("password is required")',
    '"password": "<your-password>"',
    "password=changeme",
    "API_KEY=xxxxxxxxxxxxxxxxxxxxxxxx",
    'api_key: "YOUR_API_KEY_HERE"',
    'token = "REPLACE_ME"',
    'token_type: "bearer"',
    'secret_name: "prod/db/password"',
    "password_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt())",
    "for token in tokens:\n    if token.type == NAME:\n        names.append(token.string)",
    'key = "user:{}:profile".format(user_id)',
    'cache_key = f"session:{session_id}"',
    "items.sort(key=lambda item: item.priority)",
    "AWS_REGION=us-east-1",
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "risk-assessment-2024-q2-final-approved-by-legal-team-v3.pdf",
    "task-1234567890abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL",
    "Authorization: Bearer <token>",
    "Authorization: Bearer ${TOKEN}",
    'headers = {"Authorization": f"Bearer {access_token}"}',
    'curl -u "$USER:$PASS" https://api.example.com/v1/items',
    "postgres://localhost:5432/app",
    "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app",
    "mysql://root:<password>@localhost/db",
    "https://user:****@example.com/private",
    "https://github.com/acme/infra.git",
    "ssh://git@github.com:22/acme/infra.git",
    "redis://redis:6379/0",
    "http://[::1]:8080/health",
    'version = "2.31.0"',
    '"typescript": "^5.2.2",',
    "node v18.17.1 (npm 9.6.7)",
    "Python 3.11.7 (main, Dec  8 2023, 18:56:58) [GCC 11.4.0] on linux",
    'password = "[REDACTED:password]"',
    "Authorization: Bearer [REDACTED:bearer-token]",
    "DATABASE_URL=postgres://app:[REDACTED:url-password]@db:5432/app",
    "PWD=/home/dev/projects/app\nOLDPWD=/home/dev",
    "The tokenizer splits text into tokens before they are embedded.",
    "Reset your password from the account settings page, then sign in again.",
    "Bearer tokens travel in the Authorization header; basic authentication is discouraged.",
    "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----\n<paste your key here>\n-----END OPENSSH PRIVATE KEY-----",
    "arn:aws:iam::123456789012:role/deploy",
    '"SecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"',
    "Passwordless login uses a magic link.",
    "bypass = True",
    "except KeyError:\n    pass  # not cached yet",
    "class TokenBucket:\n    def __init__(self, rate: float, capacity: int) -> None:",
    'payload = jwt.decode(token, key, algorithms=["HS256"])',
    "color: #3f9a2b; background: #ffcc00;",
    "listening on 0.0.0.0:8080, fe80::1ff:fe23:4567:890a, mac 00:1B:44:11:3A:B7",
    'private_key_path = "/etc/ssl/private/api.example.org.key"',
    "token_file: /var/run/secrets/kubernetes.io/serviceaccount/token",
    "SSH_AUTH_SOCK=/tmp/ssh-XXXXabc123/agent.4242",
    "password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256",
    'secret_key_base: <%= ENV["SECRET_KEY_BASE"] %>',
    'client_secret: "{{ .Values.oauth.clientSecret }}"',
    "export API_TOKEN=$(vault kv get -field=token secret/ci)",
    'api_key = config.get("api", "key")',
    "password = input('Password: ')",
    "token_url: https://oauth2.googleapis.com/token",
    "TOKEN_EXPIRY_SECONDS=3600",
    'grant_type: "client_credentials"',
    "self.password = password\nself.token = token",
    "  --password-file /run/secrets/db_password",
    "kubectl create secret generic db --from-literal=username=app",
    "see https://docs.example.org/auth#api-keys for how to create a key",
    "If the secret is rotated, restart the pods so they pick up the new value.",
    '"sha": "3f786850e387550fdab836ed7e6dc881de23001b"',
    "Error: token expired at 2024-05-03T10:22:41Z (request 7f9c2ba4-e88f-4a1b-9c3d-5e6f7a8b9c0d)",
    "import { Token } from './lexer';\nlet token: Token = lexer.next();",
    "passwd: files systemd",
    "key: value\nsecret: false\npassword: null",
    "MIN_PASSWORD_LENGTH = 12",
    "password_reset_token_ttl: 900",
    "com.example.security.AuthenticationTokenProviderFactoryImpl.createDefaultTokenProvider",
    "Ndk5ODc2NTQzMjEwMTIzNDU2Nzg5MA.was.not-a-token-because-it-has-no-valid-shape",
    "commit_sha: 3f786850e387550fdab836ed7e6dc881de23001b",
    'checksum = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"',
    "token_count: 123456789012",
    "key_id: 2f1e4c9a-77d0-4a5b-8f3e-1c2d3e4f5a6b",
    '"etag": "\\"33a64df551425fcc55e4d42a148795d9f25f89d4\\""',
    "secret_version: 7",
    'WWW-Authenticate: Basic realm="api", charset="UTF-8"',
    "STRIPE_PUBLISHABLE_KEY=pk_live_51HxQeLKd8bV0mZ3yT9uR2sW4",
    "GOOGLE_CLIENT_ID=1234567890-abc123def456.apps.googleusercontent.com",
    '<link rel="stylesheet" href="/app.css" integrity="sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC">',
    "session_id=8f14e45fceea167a5a36dedd4bea2543; path=/; HttpOnly",
    "nonce = secrets.token_urlsafe(32)",
    "def rotate_api_key(self, key_id: str) -> ApiKey:",
    "ApiKeyAuthenticationBackendForOrganizationMembers",
    "if password != confirm_password:\n    errors.append('passwords do not match')",
    'logger.info("token refreshed for %s", user.email)',
    "TOKEN_REGEX = r'[A-Za-z0-9_-]{20,}'",
    "export GIT_ASKPASS=/usr/lib/git-core/git-gui--askpass",
    "    private_key: Ed25519PrivateKey | None = None",
    "auth_token: ${AUTH_TOKEN:-}",
    'password: "{{ vault_db_password }}"',
    "SECRET_KEY_FALLBACKS = []",
    "apiKey: process.env.FIREBASE_API_KEY,",
    "%env SECRET_TOKEN=",
    "See the 'key-value store' section; keys are 32 hex chars, e.g. key-1 and key-2.",
    "x-request-id: 4bf92f3577b34da6a3ce929d0e0e4736",
    "Pods: web-7d4b9c8f6d-x2kqz, web-7d4b9c8f6d-p9mnd",
    "image: python:3.11-slim@sha256:2a6386ad2db20e7f55073f69a98d6da2cf9f168e05e7487d2670baeb9b7601c5",
    "https://example.com/reset?password_reset=1&next=/home",
    "postgres://app@db.internal:5432/app?sslmode=require",
    "EAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "AKIA0000000000000000 is the format; never commit a real one",
    'notes = "Maven - io.jsonwebtoken:jjwt-api-0.11.5"',
    "csrf_token=Xk8bV2rT9qLm4ZpW7nY3sH6dF1gJ0cA5eR8tU2iO4pQ=",
    "secretsmanager get-secret-value --secret-id prod/api --query SecretString",
    'author = "Ada Lovelace <ada@example.org>"',
    "auth: true\nauth_method: oauth2\nauthorization_url: https://auth.example.org/authorize",
    "OAuth2 flows: authorization code, client credentials, device code.",
)


def _negatives(g: Gen) -> list[Negative]:
    out = [Negative("code", text) for text in CODE_NEGATIVES]
    authors = ["Jane Doe <jane@example.com>", "Ravi Kumar <ravi@acme.dev>", "Li Wei <li.wei@example.org>"]
    subjects = [
        "Fix token refresh race",
        "Rotate password hashing params",
        "Bump api client",
        "Add secret scanning to CI",
    ]
    for _ in range(20):
        out.append(
            Negative(
                "git-sha",
                f"commit {g.s(HEX, 40)}\nMerge: {g.s(HEX, 7)} {g.s(HEX, 7)}\nAuthor: {g.pick(authors)}\n"
                f"Date:   Fri May 3 10:22:41 2024 +0200\n\n    {g.pick(subjects)}\n",
            )
        )
    for _ in range(15):
        out.append(
            Negative(
                "sha256",
                f"{g.s(HEX, 64)}  dist/app-{g.rng.randint(1, 9)}.{g.rng.randint(0, 30)}.{g.rng.randint(0, 9)}.tar.gz\n",
            )
        )
    for _ in range(10):
        out.append(Negative("sha256", f"image: registry.example.com/acme/api@sha256:{g.s(HEX, 64)}\n"))
    for _ in range(10):
        out.append(
            Negative(
                "sha256",
                f"requests==2.31.0 \\\n    --hash=sha256:{g.s(HEX, 64)} \\\n    --hash=sha256:{g.s(HEX, 64)}\n",
            )
        )
    for _ in range(10):
        out.append(
            Negative(
                "sha512",
                f'"node_modules/lodash": {{\n  "version": "4.17.21",\n  "integrity": "sha512-{g.b64(64)}"\n}}\n',
            )
        )
    for _ in range(8):
        out.append(Negative("go-sum", f"golang.org/x/oauth2 v0.{g.rng.randint(1, 20)}.0 h1:{g.b64(32)}\n"))
    for _ in range(15):
        out.append(
            Negative(
                "uuid",
                f"2024-05-03T10:22:41Z INFO request_id={g.uuid()} trace_id={g.s(HEX, 32)} span_id={g.s(HEX, 16)} status=200\n",
            )
        )
    for _ in range(10):
        out.append(
            Negative(
                "uuid", json.dumps({"id": g.uuid(), "tenant_id": g.uuid(), "created_at": "2024-05-03T10:22:41Z"}) + "\n"
            )
        )
    for _ in range(12):
        img = g.b64(g.rng.randint(600, 3000))
        wrapper = g.pick(
            [
                '<img alt="logo" src="data:image/png;base64,{i}">',
                "![chart](data:image/jpeg;base64,{i})",
                ".icon {{ background: url(data:image/png;base64,{i}); }}",
            ]
        )
        out.append(Negative("base64-image", wrapper.format(i=img) + "\n"))
    for _ in range(6):
        out.append(Negative("public-key", f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{g.s(B64, 43)} dev@laptop\n"))
        out.append(
            Negative(
                "public-key",
                f"-----BEGIN PUBLIC KEY-----\n{g.pem_body('MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA', 392)}\n-----END PUBLIC KEY-----\n",
            )
        )
        out.append(
            Negative(
                "certificate",
                f"-----BEGIN CERTIFICATE-----\n{g.pem_body('MIIDdzCCAl+gAwIBAgIE', 1200)}\n-----END CERTIFICATE-----\n",
            )
        )
    users = ["dev", "alice", "runner"]
    for _ in range(5):
        u = g.pick(users)
        out.append(
            Negative(
                "path",
                f"/home/{u}/.ssh/id_rsa\n/home/{u}/.aws/credentials\nC:\\Users\\{u}\\AppData\\Roaming\\npm\\token-cache\\{g.s(HEX, 8)}.json\n",
            )
        )
        out.append(
            Negative(
                "path",
                f'  File "/home/{u}/src/auth/token_store.py", line {g.rng.randint(10, 400)}, in refresh_token\n    return self._refresh(secret_ref)\n',
            )
        )
    for _ in range(8):
        out.append(
            Negative(
                "identifier",
                f"web-{g.s(HEX, 10)}-{g.s(LOWER + DIGITS, 5)}   1/1   Running   0   {g.rng.randint(1, 59)}m\n",
            )
        )
        out.append(Negative("identifier", f'<script src="/static/js/main.{g.s(HEX, 8)}.chunk.js"></script>\n'))
    return out


def negatives(seed: int = 20240503) -> list[Negative]:
    return _negatives(Gen(seed + 1))


# ------------------------------------------------------------------------- evaluation


@dataclass
class Report:
    secrets: int = 0
    detected: int = 0
    samples: int = 0
    exact: int = 0  # samples whose markers (kinds, count, order) are exactly as expected
    negatives: int = 0
    false_positives: int = 0
    families: dict[str, list[int]] = field(default_factory=dict)  # family -> [detected, total]
    misses: list[tuple[str, str]] = field(default_factory=list)
    wrong: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    lost: list[tuple[str, str]] = field(default_factory=list)  # keep-strings that did not survive
    fps: list[tuple[str, str]] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.detected / self.secrets if self.secrets else 1.0

    @property
    def fpr(self) -> float:
        return self.false_positives / self.negatives if self.negatives else 0.0

    @property
    def kind_accuracy(self) -> float:
        return self.exact / self.samples if self.samples else 1.0

    def summary(self) -> str:
        return (
            f"recall {self.recall:.4f} ({self.detected}/{self.secrets} secrets, {self.samples} samples, "
            f"{len(self.families)} families)  FPR {self.fpr:.4f} ({self.false_positives}/{self.negatives})  "
            f"kind accuracy {self.kind_accuracy:.4f}"
        )


def evaluate(scrub: Callable[[str], _Result], pos: list[Positive], neg: list[Negative]) -> Report:
    r = Report()
    for p in pos:
        out = scrub(p.text).text
        r.samples += 1
        fam = r.families.setdefault(p.family, [0, 0])
        for s in p.secrets:
            r.secrets += 1
            fam[1] += 1
            if s in out:
                r.misses.append((p.family, p.text))
            else:
                r.detected += 1
                fam[0] += 1
        got = tuple(MARKER.findall(out))
        if got == p.kinds:
            r.exact += 1
        else:
            r.wrong.append((p.text, p.kinds, got))
        r.lost += [(k, out) for k in p.keep if k not in out]
    for n in neg:
        r.negatives += 1
        res = scrub(n.text)
        if res.redactions:
            r.false_positives += 1
            r.fps.append((n.category, res.text))
    return r


# ------------------------------------------------------------------- bulk for benches

_WORDS = (
    "the a service request memory scope index query cache worker queue retry timeout budget token user "
    "session database replica health check deploy build test release config value field record batch "
    "stream event handler client server response error warning latency throughput model embedding vector "
    "search ranking summary entry store key file path branch commit review change rollback metric alert"
).split()
_VERBS = "stores ranks returns retries drops caches rotates loads writes reads updates evicts merges checks".split()


def _sentence(g: Gen) -> str:
    words = [g.pick(_WORDS) for _ in range(g.rng.randint(3, 7))]
    words.insert(g.rng.randint(1, len(words) - 1), g.pick(_VERBS))
    return " ".join(words).capitalize() + g.pick([".", ".", ".", "?", ";"])


def _python(g: Gen, ident: Callable[[], str]) -> str:
    name, arg, other = ident(), ident(), ident()
    return (
        f"def load_{name}(self, {arg}: int, *, timeout: float = 5.0) -> dict[str, object]:\n"
        f'    """Return the {name} record, or raise KeyError."""\n'
        f"    row = self._db.execute(SELECT_{name.upper()}, ({arg},)).fetchone()\n"
        f"    if row is None:\n        raise KeyError({name!r})\n"
        f"    {other} = {{k: row[k] for k in row.keys() if not k.startswith('_')}}\n"
        f"    logger.debug('loaded %s in %.1f ms', {name!r}, (time.perf_counter() - t0) * 1000)\n"
        f"    return {other}\n"
    )


def _typescript(g: Gen, ident: Callable[[], str]) -> str:
    name = ident().replace("_", "")
    return (
        f"export async function fetch{name.capitalize()}(id: string, opts: RequestInit = {{}}): Promise<{name.capitalize()}> {{\n"
        f"  const res = await fetch(`/api/v1/{name}/${{id}}`, {{ ...opts, headers: {{ Accept: 'application/json' }} }});\n"
        f"  if (!res.ok) throw new HttpError(res.status, await res.text());\n"
        f"  return (await res.json()) as {name.capitalize()};\n}}\n"
    )


def _yaml(g: Gen) -> str:
    app = g.pick(["api", "worker", "scheduler", "gateway"])
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\n  labels: {{app: {app}, tier: backend}}\n"
        f"spec:\n  replicas: {g.rng.randint(1, 6)}\n  template:\n    spec:\n      containers:\n"
        f"        - name: {app}\n          image: ghcr.io/acme/{app}:1.{g.rng.randint(0, 40)}.{g.rng.randint(0, 9)}\n"
        f"          env:\n            - name: LOG_LEVEL\n              value: info\n"
        f"          resources: {{limits: {{cpu: 500m, memory: 512Mi}}}}\n"
    )


def _shell(g: Gen) -> str:
    return (
        f"$ git status\nOn branch feature/{g.pick(_WORDS)}-{g.pick(_WORDS)}\nChanges not staged for commit:\n"
        f"\tmodified:   src/{g.pick(_WORDS)}/{g.pick(_WORDS)}.py\n$ pytest -q tests/{g.pick(_WORDS)}\n"
        f"{g.rng.randint(5, 400)} passed, {g.rng.randint(0, 3)} skipped in {g.rng.randint(1, 90)}.{g.rng.randint(10, 99)}s\n"
        f"$ ls -la\ndrwxr-xr-x  12 dev  staff   384 May  3 10:22 .\n-rw-r--r--   1 dev  staff  2048 May  3 10:21 pyproject.toml\n"
    )


def _logs(g: Gen, ident: Callable[[], str]) -> str:
    return "\n".join(
        f"2024-05-03T10:{g.rng.randint(10, 59)}:{g.rng.randint(10, 59)}Z {g.pick(['INFO', 'INFO', 'WARN', 'DEBUG'])} "
        f"{ident()}={g.rng.randint(1, 10**6)} path=/api/v1/{g.pick(['items', 'users', 'memories'])}/{g.uuid()} "
        f"latency_ms={g.rng.randint(1, 900)}"
        for _ in range(8)
    )


def clean_documents(seed: int = 7) -> Iterator[str]:
    """An endless stream of typical secret-free documents: Python and TypeScript code,
    YAML, shell sessions, logs, prose, JSON, and now and then one of the FP traps."""
    g = Gen(seed)
    traps = [n.text for n in negatives(seed)]

    def ident() -> str:
        first = g.pick(["user", "order", "cache", "session", "index", "store", "query", "batch"])
        return first + "_" + g.pick(["id", "count", "name", "map", "list", "key", "path", "size"])

    while True:
        kind = g.rng.randrange(8)
        if kind == 0:
            yield "\n".join(g.pick(traps) for _ in range(3))
        elif kind == 1:
            yield _python(g, ident)
        elif kind == 2:
            yield _typescript(g, ident)
        elif kind == 3:
            yield _yaml(g)
        elif kind == 4:
            yield _shell(g)
        elif kind == 5:
            yield _logs(g, ident)
        elif kind == 6:
            yield json.dumps(
                {
                    "id": g.uuid(),
                    "status": g.pick(["ok", "queued"]),
                    "items": [
                        {
                            "name": g.pick(_WORDS),
                            "score": round(g.rng.random(), 4),
                            "updated_at": "2024-05-03T10:22:41Z",
                        }
                        for _ in range(g.rng.randint(1, 6))
                    ],
                },
                indent=2,
            )
        else:
            yield " ".join(_sentence(g) for _ in range(g.rng.randint(3, 12)))


def text_of_size(size: int, documents: Iterator[str], sep: str = "\n\n") -> list[str]:
    """Documents from the stream until their total length reaches ``size`` characters."""
    out, total = [], 0
    for doc in documents:
        out.append(doc)
        total += len(doc) + len(sep)
        if total >= size:
            break
    return out


def sprinkled_documents(seed: int = 11, every: int = 8) -> Iterator[str]:
    """Clean documents with a positive sample mixed in every ``every`` documents."""
    pos = positives(seed)
    clean = clean_documents(seed)
    i = 0
    while True:
        for _ in range(every - 1):
            yield next(clean)
        yield pos[i % len(pos)].text
        i += 1


def family_counts(pos: list[Positive]) -> Counter[str]:
    return Counter(p.family for p in pos)
