"""Real SMS and voice providers for ``settings.NOTIFY_BACKENDS`` (mainland China).

One module per provider, each a ``dispatch.notify.BaseBackend`` built on the
provider's official SDK (request signing is the SDK's, not ours):

- ``aliyun.AliyunSmsBackend`` (SendSms / SendBatchSms), ``aliyun.AliyunVoiceBackend``
  (SingleCallByTts), ``aliyun.AliyunIvrBackend`` (IvrCall: keys 1 / 2 answer);
- ``tencent.TencentSmsBackend`` (SendSms, 200 numbers a call),
  ``tencent.TencentVoiceBackend`` (SendTtsVoice);
- ``govsms.GovSmsBackend``: a local government SMS platform (政务短信平台) over
  HMAC-signed HTTP (the scheme is documented in that module).

``ratelimit`` is the token bucket per provider, shared by every worker through
Redis. Callbacks (receipts, replies, key presses) come back through
``dispatch.hooks``. Keys, endpoints, QPS and template ids are settings read
from the environment (docs/deployment.md).
"""
