"""RegexScrubber against a generated corpus: recall, false positives, markers, idempotence.

The corpus (tests/data/secrets/secret_corpus.py) is shared with bench/bench_scrubber.py,
so the recall and FPR printed here are the ones the bench reports.
"""

from __future__ import annotations

import time

import pytest

from contextd_mcp.adapters.secret_scrubber import KINDS, RegexScrubber, marker
from contextd_mcp.ports.scrubber import Scrubber, ScrubResult
from tests.data.secrets import secret_corpus as corpus

# The rule families the scrubber promises (gitleaks' families and then some).
FAMILIES = {
    "aws", "gcp", "azure", "digitalocean", "alibaba",
    "github", "gitlab", "bitbucket", "atlassian",
    "slack", "discord", "telegram",
    "stripe", "square", "paypal-braintree", "shopify",
    "openai", "anthropic", "huggingface", "cohere", "groq", "xai", "replicate",
    "npm", "pypi", "sendgrid", "twilio", "mailgun", "vault", "databricks", "age",
    "private-key", "jwt", "url-password", "bearer", "basic-auth", "auth-header",
    "password", "generic-secret",
}  # fmt: skip


@pytest.fixture(scope="module")
def scrubber() -> RegexScrubber:
    return RegexScrubber()


@pytest.fixture(scope="module")
def positives() -> list[corpus.Positive]:
    return corpus.positives()


@pytest.fixture(scope="module")
def negatives() -> list[corpus.Negative]:
    return corpus.negatives()


@pytest.fixture(scope="module")
def report(
    scrubber: RegexScrubber, positives: list[corpus.Positive], negatives: list[corpus.Negative]
) -> corpus.Report:
    return corpus.evaluate(scrubber.scrub, positives, negatives)


def test_satisfies_the_port(scrubber: RegexScrubber) -> None:
    port: Scrubber = scrubber
    result = port.scrub("nothing to see")
    assert result == ScrubResult("nothing to see", 0, ())


def test_corpus_is_big_enough_and_covers_every_family_and_kind(
    positives: list[corpus.Positive], negatives: list[corpus.Negative]
) -> None:
    assert len(positives) >= 200
    assert len(negatives) >= 200
    assert set(corpus.family_counts(positives)) == FAMILIES
    # Every kind the scrubber can emit is expected somewhere in the corpus, and no other.
    assert {k for p in positives for k in p.kinds} == KINDS


def test_recall_and_false_positive_rate(report: corpus.Report, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\n[secret scrubber] {report.summary()}")
    assert report.recall >= 0.95, report.misses[:5]
    assert report.fpr <= 0.02, report.fps[:5]


def test_every_family_is_detected(report: corpus.Report) -> None:
    weak = {f: (d, t) for f, (d, t) in report.families.items() if d < 0.9 * t}
    assert not weak, weak


def test_marker_kinds_and_redaction_counts_are_exact(scrubber: RegexScrubber, positives: list[corpus.Positive]) -> None:
    for p in positives:
        result = scrubber.scrub(p.text)
        got = tuple(corpus.MARKER.findall(result.text))
        assert got == p.kinds, (p.text, got)
        assert result.redactions == len(p.kinds), p.text
        assert result.kinds == tuple(dict.fromkeys(p.kinds)), p.text


def test_non_secret_parts_survive(report: corpus.Report) -> None:
    assert not report.lost, report.lost[:5]


def test_idempotent(
    scrubber: RegexScrubber, positives: list[corpus.Positive], negatives: list[corpus.Negative]
) -> None:
    for text in [p.text for p in positives] + [n.text for n in negatives]:
        once = scrubber.scrub(text)
        twice = scrubber.scrub(once.text)
        assert twice.text == once.text, text
        assert twice.redactions == 0, text


# ------------------------------------------------------------ readable output, exactly


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "DATABASE_URL=postgres://reporting:Zq9vT2mWx8KpL4@db.internal:5432/analytics?sslmode=require",
            "DATABASE_URL=postgres://reporting:[REDACTED:url-password]@db.internal:5432/analytics?sslmode=require",
        ),
        (
            "redis://:Hj3kL9qWe2RtY6@cache:6379/0",
            "redis://:[REDACTED:url-password]@cache:6379/0",
        ),
        (
            "curl -H 'Authorization: Bearer 9fK2LmQ8xV4tR7wZ1pN6bY3cH5sJ0dGa' https://api.example.org",
            "curl -H 'Authorization: Bearer [REDACTED:bearer-token]' https://api.example.org",
        ),
        (
            "export AWS_ACCESS_KEY_ID=AKIAZ3M5QW7ERT2YUI6P",
            "export AWS_ACCESS_KEY_ID=[REDACTED:aws-access-key]",
        ),
        (
            '{"user": "ops", "password": "Kestrel#4821", "port": 5432}',
            '{"user": "ops", "password": "[REDACTED:password]", "port": 5432}',
        ),
        (
            "SLACK_WEBHOOK=https://hooks.slack.com/services/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",
            "SLACK_WEBHOOK=https://hooks.slack.com/services/[REDACTED:slack-webhook]",
        ),
        (
            "git clone https://x-access-token:ghs_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5@github.com/acme/ops.git",
            "git clone https://x-access-token:[REDACTED:github-token]@github.com/acme/ops.git",
        ),
    ],
)
def test_only_the_secret_is_replaced(scrubber: RegexScrubber, text: str, expected: str) -> None:
    assert scrubber.scrub(text).text == expected


def test_private_key_keeps_its_armour(scrubber: RegexScrubber) -> None:
    body = "\n".join(["MIIEowIBAAKCAQEA7x1Q" + "k3J9sLmP2qR8tV4wX6yZ0aB1cD5eF7gH9iJ2kL4mN6oP8qR" for _ in range(5)])
    text = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"
    assert scrubber.scrub(text).text == (
        "-----BEGIN RSA PRIVATE KEY-----\n[REDACTED:private-key]\n-----END RSA PRIVATE KEY-----\n"
    )


def test_kinds_are_unique_in_first_seen_order(scrubber: RegexScrubber) -> None:
    a1, a2 = "AKIAZ3M5QW7ERT2YUI6P", "ASIAQ4N7RX2KWT5ZPL3M"
    gh = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
    result = scrubber.scrub(f"{a1} then {gh} then {a2}")
    assert result.redactions == 3
    assert result.kinds == ("aws-access-key", "github-token")
    assert result.text == f"{marker('aws-access-key')} then {marker('github-token')} then {marker('aws-access-key')}"


def test_offsets_survive_non_ascii_text(scrubber: RegexScrubber) -> None:
    # 'İ'.lower() is two characters: the lower-cased view must not shift spans.
    text = "İİİ naïve — password = 'Harbor!7731' and token ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5 ✓"
    assert scrubber.scrub(text).text == (
        "İİİ naïve — password = '[REDACTED:password]' and token [REDACTED:github-token] ✓"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        'password = os.environ["DB_PASSWORD"]',
        "password=<your-password>",
        "password=changeme",
        "API_KEY=xxxxxxxxxxxxxxxxxxxxxxxx",
        "token: ${{ secrets.GITHUB_TOKEN }}",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "request_id=7f9c2ba4-e88f-4a1b-9c3d-5e6f7a8b9c0d",
        '<img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==">',
        "/home/dev/.ssh/id_rsa and C:\\Users\\dev\\.aws\\credentials",
        "https://github.com/acme/infra.git and postgres://localhost:5432/app",
        'version = "2.31.0"',
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "[REDACTED:github-token] and password: [REDACTED:password]",
    ],
)
def test_leaves_non_secrets_alone(scrubber: RegexScrubber, text: str) -> None:
    result = scrubber.scrub(text)
    assert (result.text, result.redactions, result.kinds) == (text, 0, ())


@pytest.mark.slow
def test_clean_text_throughput(scrubber: RegexScrubber) -> None:
    docs = corpus.text_of_size(2_000_000, corpus.clean_documents())
    started = time.process_time()  # CPU time: a busy shared machine does not fail the test
    redactions = sum(scrubber.scrub(d).redactions for d in docs)
    mb_per_s = sum(map(len, docs)) / 1e6 / (time.process_time() - started)
    assert redactions == 0
    # A floor against regressions (decoded views cost ~2.5x on clean text: bench/bench_scrubber_encodings.py).
    assert mb_per_s >= 2, mb_per_s
