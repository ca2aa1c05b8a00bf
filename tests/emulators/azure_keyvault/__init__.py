"""The Azure Key Vault emulator (keys data plane), built on the shared emulator machinery in
tests/emulators/common. README.md describes the behaviour and where each fact comes from.

    emulator.py       the entry script: command line, the Vault service, its control endpoints
    base.py           what identity and keys share: error shapes, base64, the vault's resource
    identity.py       Azure AD token endpoint, OpenID configuration, IMDS, the 401 challenge
    keystore.py       the vault's keys and their persistence (versions, soft delete, cache)
    keys_api.py       the keys API: routes, bundles, create, import, get, update, crypto
    keys_lifecycle.py the keys API's listings (paging), soft delete, recover, purge, backup, restore
    keys_model.py     validation of the keys API's request models, RSA paddings
    keys_import.py    key material from an imported JWK or a BYOK transfer file
    permissions.py    access policies: each identity's key permissions, the 403 without one
    limits.py         the vault's transaction limits (opt-in), weighted by key type; the 429
    vaultctl.py       the ctl script (common/emuctl.py) for shell scripts and C tests
"""
