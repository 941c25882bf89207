"""A phone simulator speaking Twilio's REST API, for tests and demos (stands alone: no responder imports).

sim = PhoneSimulator(account_sid, auth_token, sms_webhook_url, service_numbers=["+15005550006"])
await sim.start()
client.api.base_url = sim.url
phone = sim.phone("+33612345678")
await phone.expect_sms(contains="ACK")
"""

from responder.simulator.behaviour import Behaviour, BehaviourError
from responder.simulator.carrier import WebhookError
from responder.simulator.server import PhoneSimulator
from responder.simulator.state import Phone, SimCall, SimMessage
from responder.simulator.switchboard import ApiRequest

__all__ = [
    "ApiRequest",
    "Behaviour",
    "BehaviourError",
    "Phone",
    "PhoneSimulator",
    "SimCall",
    "SimMessage",
    "WebhookError",
]
