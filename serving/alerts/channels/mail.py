"""E-mail over SMTP (Python's smtplib): the alert or the digest as text and HTML, to one address.

Follows RFC 5321 (SMTP) as smtplib speaks it, with STARTTLS (RFC 3207) when configured: a 4xx reply or a
dropped or timed-out connection is worth retrying, a 5xx reply (an unknown mailbox, a refused sender) is not.
The URL is `smtp://host:port`; the settings' `username`/`secret` log in when a user is set.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import urlsplit

from leadradar.serving.alerts.alert import Delivery, Message


@dataclass
class Email:
    """One mail server; the recipient is the salesperson's (or the boss's) address."""

    url: str
    sender: str
    username: str = ""
    secret: str = ""
    starttls: bool = True
    per_minute: int = 60
    timeout: float = 10.0
    kind: str = field(default="email", init=False)

    def send(self, message: Message, recipient: str | None = None) -> Delivery:
        """One mail with a text and an HTML part."""
        if not recipient:
            return Delivery(ok=False, detail="no e-mail address for this recipient (alerts.channels.emails)")
        mail = EmailMessage()
        mail["Subject"], mail["From"], mail["To"] = message.title, self.sender, recipient
        mail.set_content(message.text + (f"\n\n{message.link}" if message.link else ""))
        mail.add_alternative(message.html, subtype="html")
        parts = urlsplit(self.url)
        try:
            with smtplib.SMTP(parts.hostname or "127.0.0.1", parts.port or 25, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.secret)
                refused = smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            return _reply(exc.recipients.get(recipient, (550, b"refused"))[0], "recipient refused")
        except smtplib.SMTPResponseException as exc:
            error = exc.smtp_error
            return _reply(exc.smtp_code, error.decode(errors="replace") if isinstance(error, bytes) else str(error))
        except TimeoutError:
            return Delivery(ok=False, retry=True, detail=f"time-out after {self.timeout} s")
        except (OSError, smtplib.SMTPException) as exc:
            return Delivery(ok=False, retry=True, detail=f"no answer: {type(exc).__name__}: {exc}")
        if refused:
            return Delivery(ok=False, detail=f"refused: {refused}")
        return Delivery(ok=True, status=250, detail="sent")


def _reply(code: int, text: str) -> Delivery:
    return Delivery(ok=False, status=code, retry=400 <= code < 500, detail=f"SMTP {code}: {text}")
