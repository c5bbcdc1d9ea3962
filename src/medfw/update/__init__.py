"""Signed update delivery: the TUF update repository and the device update agent.

Modules (imported on use, so that importing :mod:`medfw.update` stays cheap):

* :mod:`medfw.update.repository` — :class:`~medfw.update.repository.TufRepository` (init, publish, online
  re-signing, rotation of every role) and :class:`~medfw.update.repository.ReleaseInfo`
* :mod:`medfw.update.tuf_signer` — :class:`~medfw.update.tuf_signer.MedfwTufSigner`, a securesystemslib signer over
  any medfw :class:`~medfw.crypto.signer.Signer` (key file or PKCS#11 token)
* :mod:`medfw.update.agent` — :class:`~medfw.update.agent.UpdateAgent`, :func:`~medfw.update.agent.provision`
* :mod:`medfw.update.device_port` — the agent's view of :class:`medfw.device.Device`
* :mod:`medfw.update.fetcher` — HTTP with bounded retries, and the python-tuf fetcher over ``httpx``
"""
