"""TwiML documents the service answers Twilio with (voice menus and SMS replies)."""

from __future__ import annotations

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

# Seconds Twilio waits for a key after the prompt; the prompt plays this many times in all.
GATHER_TIMEOUT_S = 6
PROMPT_PLAYS = 3


def menu(prompt: str, voice_lang: str, action_url: str, again_url: str | None) -> str:
    """The page menu: 1 accept, 2 pass, * repeat; without input, `again_url` plays it once more."""
    response = VoiceResponse()
    gather = response.gather(num_digits=1, action=action_url, method="POST", timeout=GATHER_TIMEOUT_S)
    gather.say(prompt, language=voice_lang)
    if again_url:
        response.redirect(again_url, method="POST")
    return str(response)


def redirect(url: str) -> str:
    response = VoiceResponse()
    response.redirect(url, method="POST")
    return str(response)


def say_and_hang_up(text: str, voice_lang: str) -> str:
    response = VoiceResponse()
    response.say(text, language=voice_lang)
    response.hangup()
    return str(response)


def sms_reply(text: str | None) -> str:
    """An answer to an inbound SMS: a reply message, or nothing at all."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)
