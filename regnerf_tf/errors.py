"""The exceptions regnerf-tf raises on purpose.

Every error the project raises about its inputs derives from
:class:`RegNeRFError`, and each also derives from the built-in type callers
already expect, so ``except ValueError`` and ``except FileNotFoundError`` keep
working:

===========================  ======================  ===========================
class                        also a                  raised when
===========================  ======================  ===========================
``InputError``               ``ValueError``          data, arrays or arguments
                                                     are malformed (corrupt
                                                     image, NaN pose, wrong
                                                     shape, near >= far, ...)
``ConfigError``              ``InputError``          a config field or override
                                                     is out of range or unknown
``CheckpointMismatchError``  ``InputError``          a checkpoint holds the
                                                     variables of another model
                                                     or optimizer config
``MissingFileError``         ``FileNotFoundError``   an expected file or folder
                                                     is absent or unreadable
``DivergenceError``          ``RuntimeError``        training produced too many
                                                     non-finite steps in a row
===========================  ======================  ===========================

Messages say what was expected, what was found and what to do.
"""


class RegNeRFError(Exception):
  """Base class of every exception regnerf-tf raises deliberately."""


class InputError(RegNeRFError, ValueError):
  """Malformed data, array or argument; the message names what was expected."""


class ConfigError(InputError):
  """A config field, override or preset name is invalid."""


class CheckpointMismatchError(InputError):
  """A checkpoint was written for a model or optimizer of another config."""


class MissingFileError(RegNeRFError, FileNotFoundError):
  """An expected file or folder does not exist or cannot be listed."""


class DivergenceError(RegNeRFError, RuntimeError):
  """Training stopped after too many consecutive non-finite steps."""


DOCUMENTED = (InputError, MissingFileError, DivergenceError)
