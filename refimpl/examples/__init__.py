"""Small end-to-end examples, one per paper: the routines composing, in NumPy, in seconds.

Run one with ``python -m refimpl.examples.<name>``; each module's ``main()`` returns the
numbers it prints, and the tests check them.
"""
