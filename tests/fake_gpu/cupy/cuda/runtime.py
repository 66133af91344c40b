"""cupy.cuda.runtime of the stand-in: it reports one CUDA device."""


class CUDARuntimeError(RuntimeError):
    """Raised with a cudaError_t status code, as CuPy's (e.g. 100, cudaErrorNoDevice)."""

    def __init__(self, status):
        self.status = int(status)
        super().__init__(f"CUDA runtime error {self.status}")


def getDeviceCount():  # noqa: N802 (CUDA's name)
    return 1
