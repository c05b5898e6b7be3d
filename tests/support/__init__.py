"""What the tests share that is not a fixture: the app in process (``app``), a bank front-end
talking to it or to real servers (``bank``), test persons and the PIN (``people``), problem
replies (``problems``), server processes (``processes``), OCSP/CRL helpers (``status``),
signature checks (``signing``), external tools (``tools``) and SoftHSM2 (``softhsm``).
Fixtures stay in the conftest.py files."""
