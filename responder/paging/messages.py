"""What pages say. Never the subject's identity, the content, or health terms beyond the risk level."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageFacts:
    """The only facts a page may carry."""

    ref: str
    risk_level: str
    region: str | None


_SMS = {
    "en": "RESPONDER case {ref}: {risk} risk, region {region}. Reply ACK {ref} to accept, NO to pass. {link}",
    "fr": "RESPONDER dossier {ref} : risque {risk}, région {region}. Répondez ACK {ref} pour accepter, "
    "NO pour passer. {link}",
}
_RISK = {
    "fr": {"imminent": "IMMINENT", "high": "ÉLEVÉ", "medium": "MOYEN", "low": "FAIBLE"},
}
_VOICE_PROMPT = {
    "en": "This is responder. Case {spelled}. {risk} risk, region {region}. "
    "Press 1 to accept. Press 2 to pass. Press star to repeat.",
    "fr": "Ici responder. Dossier {spelled}. Risque {risk}, région {region}. "
    "Tapez 1 pour accepter. Tapez 2 pour passer. Tapez étoile pour répéter.",
}
_VOICE_LINES = {
    "en": {
        "accepted": "Accepted. Case {spelled} is yours. Details are on your phone.",
        "taken": "Case {spelled} was already accepted by {holder}. Thank you. Goodbye.",
        "passed": "Passed. The next person is being paged. Goodbye.",
        "closed": "Case {spelled} is closed. Goodbye.",
        "voicemail": "This is responder with an urgent page, case {spelled}. Read your text messages "
        "and reply to the page now.",
        "no_input": "No key was pressed. Goodbye.",
    },
    "fr": {
        "accepted": "Accepté. Le dossier {spelled} est à vous. Les détails sont sur votre téléphone.",
        "taken": "Le dossier {spelled} a déjà été accepté par {holder}. Merci. Au revoir.",
        "passed": "Passé. La personne suivante est appelée. Au revoir.",
        "closed": "Le dossier {spelled} est clos. Au revoir.",
        "voicemail": "Ici responder, appel urgent, dossier {spelled}. Lisez vos SMS et répondez "
        "à l'alerte maintenant.",
        "no_input": "Aucune touche. Au revoir.",
    },
}
_SMS_LINES = {
    "en": {
        "accepted": "Case {ref} is yours. Everyone else paged is being told.",
        "taken": "Case {ref} was already accepted by {holder}. No action needed.",
        "taken_notice": "Case {ref} was taken by {holder}. No action needed.",
        "passed": "Passed on case {ref}. The next person is being paged.",
        "closed": "Case {ref} is closed. No action needed.",
        "unknown": "No open page matches. Reply ACK <case> to accept, NO to pass, HELP for help.",
        "help": "RESPONDER: reply ACK <case> to accept a page, NO <case> to pass it. STOP ends SMS pages "
        "(voice continues).",
        "exhausted": "RESPONDER case {ref}: {risk} risk, region {region}: nobody accepted after the full "
        "chain; all on-call staff are being paged.",
        "unstaffed": "RESPONDER case {ref}: {risk} risk, region {region}: nobody is on call there; the "
        "default team is being paged.",
        "contact_flagged": "RESPONDER: {holder} cannot be reached by SMS or at this number ({task}); "
        "their other channel is used (case {ref}). Fix the roster if the number is wrong.",
        "phone_limit": "RESPONDER: {holder}'s phone reached the flood limit ({task}). Their pages are "
        "combined, one SMS and one call every few seconds; none is dropped (case {ref}).",
        "provider_outage": "RESPONDER: Twilio could not be reached for {task}; pages were held and are "
        "going out now, none was dropped (case {ref}).",
        "stopped": "You will get no more SMS pages; voice pages continue. Reply START to resume.",
        "started": "SMS pages resumed.",
        "went_live": "RESPONDER case {ref}: the content is now LIVE. Open the case now.",
        "new_location": "RESPONDER case {ref}: new location information arrived. Check the case.",
        "retract": "RESPONDER case {ref}: the platform asks for a review. Paging goes on until someone "
        "decides.",
        "task_overdue": "RESPONDER case {ref}: task overdue: {task}.",
        "quiet": "RESPONDER case {ref}: no activity recorded for a while. Record progress or hand the case "
        "on.",
    },
    "fr": {
        "accepted": "Le dossier {ref} est à vous. Les autres personnes alertées sont prévenues.",
        "taken": "Le dossier {ref} a déjà été accepté par {holder}. Rien à faire.",
        "taken_notice": "Le dossier {ref} a été pris par {holder}. Rien à faire.",
        "passed": "Dossier {ref} passé. La personne suivante est alertée.",
        "closed": "Le dossier {ref} est clos. Rien à faire.",
        "unknown": "Aucune alerte ouverte ne correspond. Répondez ACK <dossier> pour accepter, NO pour "
        "passer, HELP pour l'aide.",
        "help": "RESPONDER : répondez ACK <dossier> pour accepter une alerte, NO <dossier> pour la passer. "
        "STOP arrête les SMS (les appels continuent).",
        "exhausted": "RESPONDER dossier {ref} : risque {risk}, région {region} : personne n'a accepté après "
        "toute la chaîne ; toute l'astreinte est alertée.",
        "unstaffed": "RESPONDER dossier {ref} : risque {risk}, région {region} : personne d'astreinte ; "
        "l'équipe par défaut est alertée.",
        "contact_flagged": "RESPONDER : {holder} injoignable par SMS ou à ce numéro ({task}) ; son autre "
        "canal est utilisé (dossier {ref}). Corrigez l'annuaire si le numéro est faux.",
        "phone_limit": "RESPONDER : le téléphone de {holder} a atteint la limite anti-rafale ({task}). Ses "
        "alertes sont regroupées, un SMS et un appel toutes les quelques secondes ; aucune n'est perdue "
        "(dossier {ref}).",
        "provider_outage": "RESPONDER : Twilio était injoignable pendant {task} ; les alertes ont été "
        "retenues et partent maintenant, aucune n'est perdue (dossier {ref}).",
        "stopped": "Vous ne recevrez plus d'alertes par SMS ; les appels continuent. Répondez START pour "
        "reprendre.",
        "started": "Alertes SMS reprises.",
        "went_live": "RESPONDER dossier {ref} : le contenu est maintenant EN DIRECT. Ouvrez le dossier.",
        "new_location": "RESPONDER dossier {ref} : nouvelle information de localisation. Consultez le "
        "dossier.",
        "retract": "RESPONDER dossier {ref} : la plateforme demande une revue. Les alertes continuent "
        "jusqu'à une décision.",
        "task_overdue": "RESPONDER dossier {ref} : tâche en retard : {task}.",
        "quiet": "RESPONDER dossier {ref} : aucune activité depuis un moment. Notez l'avancement ou "
        "passez le dossier.",
    },
}
VOICE_LANGUAGES = {"en": "en-US", "fr": "fr-FR"}


def language_of(languages: tuple[str, ...] | list[str]) -> str:
    """The first of a person's languages we have texts for; English otherwise."""
    return next((lang for lang in languages if lang in _SMS), "en")


def spell(ref: str) -> str:
    """K7Q2 → 'K, 7, Q, 2' so a voice reads it character by character."""
    return ", ".join(ref)


def _risk(facts: PageFacts, lang: str) -> str:
    return _RISK.get(lang, {}).get(facts.risk_level, facts.risk_level.upper())


def page_sms(facts: PageFacts, lang: str, link: str) -> str:
    return _SMS[lang].format(
        ref=facts.ref, risk=_risk(facts, lang), region=facts.region or "unknown", link=link
    )


_COMBINED = {
    "en": (
        "RESPONDER: {n} cases for you. Reply ACK <case> to accept one, NO <case> to pass.",
        "{ref}: {risk} risk, region {region}. {link}",
    ),
    "fr": (
        "RESPONDER : {n} dossiers pour vous. Répondez ACK <dossier> pour en accepter un, NO <dossier> "
        "pour passer.",
        "{ref} : risque {risk}, région {region}. {link}",
    ),
}


def combined_sms(lang: str, pages: list[tuple[PageFacts, str]]) -> str:
    """One SMS naming several cases, each with its reference and one-time link (over the flood limit)."""
    head, line = _COMBINED[lang]
    lines = [
        line.format(ref=f.ref, risk=_risk(f, lang), region=f.region or "unknown", link=link)
        for f, link in pages
    ]
    return "\n".join([head.format(n=len(pages)), *lines])


def voice_prompt(facts: PageFacts, lang: str) -> str:
    region = " ".join((facts.region or "unknown").replace("-", ""))
    return _VOICE_PROMPT[lang].format(spelled=spell(facts.ref), risk=_risk(facts, lang), region=region)


def voice_line(key: str, lang: str, ref: str, holder: str = "") -> str:
    return _VOICE_LINES[lang][key].format(spelled=spell(ref), holder=holder)


def sms_line(
    key: str, facts: PageFacts | None = None, *, lang: str = "en", holder: str = "", task: str = ""
) -> str:
    """A short SMS (a reply or a notice) in the reader's language."""
    ref = facts.ref if facts else ""
    risk = _risk(facts, lang) if facts else ""
    region = (facts.region or "unknown") if facts else ""
    return _SMS_LINES[lang][key].format(ref=ref, holder=holder, risk=risk, region=region, task=task)


_HANDOFF = {
    "en": "RESPONDER: you are on call from now: {role} {regions} ({layer}), until {until}.",
    "fr": "RESPONDER : vous êtes d'astreinte dès maintenant : {role} {regions} ({layer}), jusqu'au {until}.",
}


def handoff_line(lang: str, role: str, regions: str, layer: str, until: str) -> str:
    """The SMS to a person whose on-call turn starts (no personal data of anyone else)."""
    return _HANDOFF.get(lang, _HANDOFF["en"]).format(role=role, regions=regions, layer=layer, until=until)
