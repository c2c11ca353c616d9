// A real nats-server with JetStream for the replication tests: started on a free loopback port
// with its store under a temporary directory, stopped (and restartable on the same port and
// store) by the test. The binary is found on PATH (scripts/install-deps installs Debian's
// nats-server); without it the tests fail, saying so.
#pragma once

#include <sys/types.h>

#include <string>

namespace keel::test {

class NatsServer {
 public:
  // Starts it and waits until it accepts connections (fails the test after 10 s).
  explicit NatsServer(const std::string& store_directory);
  ~NatsServer();  // stop()
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  // SIGTERM, then wait for it to exit (SIGKILL after 10 s).
  void stop();
  // Starts it again on the same port and store.
  void start();

 private:
  std::string directory_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace keel::test
