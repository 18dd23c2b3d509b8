// CancelToken: a way to end a blocking wait for the server from elsewhere, in
// particular from a signal handler (Ctrl-C in a worker or in the tq REPL).
//
// It is a pipe: cancel() writes one byte, which is async-signal-safe, and a
// LineSocket that was handed the token polls the pipe's read end next to its
// socket, so a wait ends the moment the token fires, in every thread that
// waits on it. Invariant: once cancelled, a token stays cancelled (the byte is
// never read) until reset(), which only the owner calls, when nobody waits.
#pragma once

namespace tq::client {

class CancelToken {
 public:
  CancelToken();
  ~CancelToken();
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  // Async-signal-safe; may be called any number of times, from any thread.
  void cancel() const;
  bool cancelled() const;
  // Makes the token usable again. Not signal-safe; call when nothing waits.
  void reset();

  // Becomes readable once cancelled; for poll().
  int fd() const { return read_fd_; }

  // Sleeps up to ms milliseconds; false when cancelled first.
  bool sleep_for_ms(int ms) const;

 private:
  int read_fd_ = -1;
  int write_fd_ = -1;
};

}  // namespace tq::client
