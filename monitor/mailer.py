"""E-mail building and transport: one alert becomes an `EmailMessage` and leaves by SMTP or file.

`build_message` makes a UTF-8 multipart/alternative message (plain text + HTML). `SmtpTransport`
keeps one SMTP connection open for a batch and turns every SMTP or network problem into one
`MailerError` whose text never contains the password. `FileTransport` writes ``<name>.eml`` files.
"""

from __future__ import annotations

import secrets
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from types import TracebackType

from monitor.config import AlertsConfig, SmtpConfig


class MailerError(Exception):
    """A message could not be handed over; the text says why (and never holds the password)."""


def make_message_id(sender: str) -> str:
    """A new globally unique Message-ID in the sender's domain, e.g. ``<...@example.org>``."""
    domain = sender.rpartition("@")[2] or "localhost"
    # Short enough that the header is not folded; 96 random bits make collisions negligible.
    return f"<cw.{secrets.token_hex(12)}@{domain}>"


def mail_safe(text: str) -> str:
    """Text that encodes as UTF-8: lone surrogates from badly decoded pages become U+FFFD."""
    return text.encode("utf-8", "replace").decode("utf-8")


def prefixed_subject(prefix: str, subject: str) -> str:
    """`subject` with the configured prefix in front, unless it is already there."""
    subject = " ".join(mail_safe(subject).split())  # no line breaks may reach a header
    if not prefix or subject.startswith(prefix):
        return subject
    return f"{prefix} {subject}"


def build_message(
    alerts: AlertsConfig,
    *,
    recipient: str,
    subject: str,
    body_text: str,
    body_html: str,
    message_id: str,
    date: datetime | None = None,
) -> EmailMessage:
    """A multipart/alternative UTF-8 message from the configured sender to `recipient`."""
    message = EmailMessage()
    message["From"] = str(alerts.sender)
    message["To"] = recipient
    message["Subject"] = prefixed_subject(alerts.subject_prefix, subject)
    message["Date"] = format_datetime(date or datetime.now(UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: keeps vacation replies away
    message.set_content(mail_safe(body_text), subtype="plain", charset="utf-8")
    message.add_alternative(mail_safe(body_html), subtype="html", charset="utf-8")
    return message


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error
        if isinstance(reply, bytes):
            reply = reply.decode("utf-8", "replace")
        return f"{type(exc).__name__}: {exc.smtp_code} {reply}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(
            f"{rcpt}: {code} {msg.decode('utf-8', 'replace') if isinstance(msg, bytes) else msg}"
            for rcpt, (code, msg) in exc.recipients.items()
        )
        return f"recipient refused: {refused}"
    return f"{type(exc).__name__}: {exc}"


class SmtpTransport:
    """One SMTP connection for a batch of messages; use as a context manager.

    The connection opens on the first `send`; after a failed send it is dropped and the next
    `send` reconnects, so one bad message does not poison the rest of the batch.
    """

    def __init__(self, smtp: SmtpConfig) -> None:
        self.smtp = smtp
        self._connection: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Open the connection now (STARTTLS/SSL and login as configured); `MailerError` if not."""
        if self._connection is not None:
            return
        password = self.smtp.password()
        try:
            self._connection = self._open(password)
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            where = f"{self.smtp.host}:{self.smtp.port}"
            raise MailerError(_redact(f"SMTP {where}: {_describe(exc)}", password)) from None

    def _open(self, password: str | None) -> smtplib.SMTP:
        smtp = self.smtp
        context = ssl.create_default_context()
        if smtp.ssl:
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout, context=context
            )
        else:
            connection = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        try:
            if smtp.starttls and not smtp.ssl:
                connection.starttls(context=context)
            if smtp.username:
                if password is None:
                    raise MailerError(
                        f"SMTP user {smtp.username!r} is set but the password variable "
                        f"${smtp.password_env or '(password_env not given)'} is empty"
                    )
                connection.login(smtp.username, password)
        except BaseException:
            connection.close()
            raise
        return connection

    def send(self, message: EmailMessage) -> None:
        """Hand `message` to the server; `MailerError` on any SMTP or network problem."""
        self.connect()
        assert self._connection is not None
        try:
            self._connection.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise MailerError(_redact(_describe(exc), self.smtp.password())) from None

    def close(self) -> None:
        """Say QUIT if the connection is still up; never raises."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.quit()
        except (smtplib.SMTPException, OSError):
            connection.close()


class FileTransport:
    """Writes each message as ``<directory>/<name>.eml`` instead of sending it (demo, testing)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __enter__(self) -> FileTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def write(self, message: EmailMessage, name: str) -> Path:
        """Write the message atomically (temp file + rename); `MailerError` if the disk refuses."""
        target = self.directory / f"{name}.eml"
        partial = target.with_suffix(".eml.part")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(message.as_bytes())
            partial.replace(target)
        except OSError as exc:
            raise MailerError(f"cannot write {target}: {exc}") from None
        return target
