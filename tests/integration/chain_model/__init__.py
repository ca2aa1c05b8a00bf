"""The model test of the chain invariants (issue 11): a seeded random walk that drives the real
keyplane command against real stores and checks invariants 1, 3, 4 and 5 from the outside.
tests/integration/chain_model.py is the entry; the modules here are its parts:

    world.py     the stores (two file regions, two SoftHSM tokens, an emulated Key Vault, a
                 secret replica and its password store), the policy, running keyplane
    pkcs11.py    listing a SoftHSM token with pkcs11-tool, independently of keyplane
    observe.py   what every store holds, read directly (version -> fingerprints)
    material.py  key material and envelopes made in software (fingerprints, file store secrets)
    draw.py      which step comes next: weights and random choices
    steps.py     carrying a step out
    softhsm.py   putting back what a kill -9 left half-written in SoftHSM's files
    plant.py     the selftest's faults, planted behind keyplane's back
    checks.py    the invariants
    walk.py      one seed (or a replayed sequence) from setup to the final checks
    shrink.py    a shorter sequence that shows the same violation
"""
