"""Everything otdoctor knows about OneTrainer: where its checkout is (`checkout`), the Python its
launcher picks (`python_range`), the platform requirements file (`platforms`, `gpu_facts`), its
requirements files (`requirements`), its training configs (`config`, `config_keys`) and the venv
facts several checks share (`venv_facts`). Facts the checkout can tell at run time are read there.
"""
