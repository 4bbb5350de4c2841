"""The only code of smstally that touches private names of the libraries it builds on.

One module per library: :mod:`.faust_internals` (faust-streaming), :mod:`.aiokafka_internals`
(aiokafka) and :mod:`.mode_internals` (mode-streaming, Faust's service framework). Each says
in its docstring which private names it uses and why; the rest of the code calls the
well-named functions and classes they define. ``tests/test_library_internals.py`` checks
every one of those names (it exists, is the kind of thing we use, has the signature or type
we rely on), so an upgrade that changes one fails loudly there.

The versions those privates were checked with are pinned in ``pyproject.toml`` and listed
in :data:`.versions.TESTED`; the worker refuses to start with any other installed version
(:func:`.versions.check_versions`) unless ``SMSTALLY_ALLOW_UNTESTED_LIBRARIES=1``.
"""
