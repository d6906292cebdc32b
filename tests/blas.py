"""One BLAS thread for the tests of tiny models.

Extra BLAS threads only add overhead to matrix products this small, and stall on a busy machine. More
importantly, a matrix product split over another number of threads adds in another order, so results
are bit-identical only for a fixed thread count: the tests that compare bytes after a resume rely on it.
"""
import contextlib


@contextlib.contextmanager
def one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a test extra: without it the tests are only slower
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
