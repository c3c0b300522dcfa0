"""Errors a user can fix. The CLI and every stage print them as one line and exit non-zero."""


class SemguideError(Exception):
    """Bad input: a file, key or value the user gave. The message names it.

    every_rank: raised by every process of a distributed run at once (only rank 0 prints it).
    """

    def __init__(self, message: str = "", every_rank: bool = False):
        super().__init__(message)
        self.every_rank = every_rank


class ConfigError(SemguideError):
    """A bad params.yaml key or value."""


class DataError(SemguideError):
    """A dataset file that is missing, corrupt or inconsistent."""


class ModelFileError(SemguideError):
    """A weights or checkpoint file that is missing or does not fit its model."""


class TrainingDiverged(SemguideError):
    """A loss became NaN or inf; the last good checkpoint is kept."""
