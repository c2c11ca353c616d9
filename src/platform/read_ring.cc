#include "platform/read_ring.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#ifdef KEEL_HAVE_IO_URING
#include <liburing.h>
#endif

namespace keel::platform {

#ifdef KEEL_HAVE_IO_URING
namespace {

class Ring {
 public:
  static constexpr unsigned kEntries = 64;
  Ring() : pid_(::getpid()) { ok_ = ::io_uring_queue_init(kEntries, &ring_, 0) == 0; }
  ~Ring() {
    if (ok()) ::io_uring_queue_exit(&ring_);
  }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // A forked child does not use its parent's ring (it shares the kernel's side of it).
  bool ok() const { return ok_ && pid_ == ::getpid(); }

  // Reads up to kEntries reads and waits for them. A read the kernel did not take keeps -EAGAIN
  // (the caller reads it itself), and then the ring is closed: entries left in its queue must
  // never be submitted later, when their buffers may be gone.
  void run(std::span<RingRead> reads) {
    unsigned queued = 0;
    for (RingRead& r : reads) {
      r.result = -EAGAIN;
      io_uring_sqe* sqe = ::io_uring_get_sqe(&ring_);
      if (sqe == nullptr) continue;
      ::io_uring_prep_read(sqe, r.fd, r.out.data(), static_cast<unsigned>(r.out.size()), r.offset);
      ::io_uring_sqe_set_data64(sqe, static_cast<uint64_t>(&r - reads.data()));
      ++queued;
    }
    const int submitted = std::max(0, ::io_uring_submit_and_wait(&ring_, queued));
    for (int done = 0; done < submitted;) {
      io_uring_cqe* cqe = nullptr;
      const int rc = ::io_uring_wait_cqe(&ring_, &cqe);
      if (rc == -EINTR || rc == -EAGAIN || rc == -EBUSY) continue;
      // A ring that lost a completion may still write into a buffer after this returns; there is
      // no safe way on (unreachable: at most kEntries reads are in flight on a ring twice as deep).
      if (rc != 0) std::abort();
      const uint64_t index = ::io_uring_cqe_get_data64(cqe);
      if (index < reads.size()) reads[index].result = cqe->res;
      ::io_uring_cqe_seen(&ring_, cqe);
      ++done;
    }
    if (static_cast<unsigned>(submitted) < queued) {
      ::io_uring_queue_exit(&ring_);
      ok_ = false;
    }
  }

 private:
  io_uring ring_{};
  pid_t pid_;
  bool ok_ = false;
};

}  // namespace

bool ring_read(std::span<RingRead> reads) {
  thread_local Ring ring;
  if (!ring.ok()) return false;
  for (size_t at = 0; at < reads.size(); at += Ring::kEntries) {
    std::span<RingRead> part =
        reads.subspan(at, std::min<size_t>(Ring::kEntries, reads.size() - at));
    if (ring.ok()) {
      ring.run(part);
    } else {
      for (RingRead& r : part) r.result = -EAGAIN;
    }
  }
  return true;
}

#else

bool ring_read(std::span<RingRead>) { return false; }

#endif

}  // namespace keel::platform
