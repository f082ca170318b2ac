// A deliberately simple blocking HTTP/1.1 client over a loopback POSIX socket, for server tests: it
// sends raw bytes (so tests can send broken or slow requests) and reads one response.
#ifndef KMS_TESTS_API_HTTP_CLIENT_H_
#define KMS_TESTS_API_HTTP_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <string>

namespace kms::api::testing {

struct RawResponse {
  unsigned status = 0;
  std::string head;  // status line and headers
  std::string body;
  bool HasHeader(const std::string& line) const { return head.find(line) != std::string::npos; }
};

class RawClient {
 public:
  // `source`: the local address to connect from (another 127.0.0.0/8 address is another peer).
  explicit RawClient(std::uint16_t port, int recv_timeout_ms = 5000, const char* source = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (source != nullptr) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      ::inet_pton(AF_INET, source, &local.sin_addr);
      ::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{recv_timeout_ms / 1000, (recv_timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  bool Send(const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }

  // Sends `bytes` until the server stops taking them (error, or nothing taken within
  // `send_timeout_ms`: the server stopped reading); returns how many bytes were taken.
  std::size_t SendUntilRefused(const std::string& bytes, int send_timeout_ms) {
    timeval tv{send_timeout_ms / 1000, (send_timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    std::size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    return off;
  }

  // Reads the status line and headers of one response and nothing after them: for answers that
  // carry no body whatever their Content-Length says (HEAD, 1xx).
  std::optional<RawResponse> ReadHead() {
    for (;;) {
      const auto end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        RawResponse r;
        r.head = buf_.substr(0, end + 2);
        r.status = static_cast<unsigned>(std::stoul(r.head.substr(9, 3)));
        buf_.erase(0, end + 4);
        return r;
      }
      if (!Fill()) return std::nullopt;
    }
  }

  // Bytes received and not yet returned by Read or ReadHead.
  const std::string& unread() const { return buf_; }

  // Reads one response (Content-Length framed); nullopt on EOF/timeout before a full response.
  std::optional<RawResponse> Read() {
    for (;;) {
      const auto end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        RawResponse r;
        r.head = buf_.substr(0, end + 2);
        r.status = static_cast<unsigned>(std::stoul(r.head.substr(9, 3)));
        std::size_t length = 0;
        const auto cl = Lower(r.head).find("content-length: ");
        if (cl != std::string::npos) length = std::stoul(r.head.substr(cl + 16));
        if (buf_.size() >= end + 4 + length) {
          r.body = buf_.substr(end + 4, length);
          buf_.erase(0, end + 4 + length);
          return r;
        }
      }
      if (!Fill()) return std::nullopt;
    }
  }

  // True when the server closed the connection (EOF) within the receive timeout.
  bool WaitForClose() {
    char c;
    for (;;) {
      const ssize_t n = ::recv(fd_, &c, 1, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

  std::optional<RawResponse> RoundTrip(const std::string& request) {
    if (!Send(request)) return std::nullopt;
    return Read();
  }

 private:
  static std::string Lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  bool Fill() {
    char tmp[8192];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

inline std::string PostRequest(const std::string& body, const std::string& extra_headers = "") {
  return "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + extra_headers + "\r\n" + body;
}

}  // namespace kms::api::testing

#endif  // KMS_TESTS_API_HTTP_CLIENT_H_
