"""Sharing what otdoctor found: the bug-report bundle (`bundle`), made safe to post (`anonymize`),
and many machines' reports side by side (`merge`)."""
