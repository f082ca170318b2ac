// MemoryTransport: an http::Transport over bytes in memory, so tests and fuzz targets drive the real
// HTTP session (api/http/server.cc) through http::Server::ServeConnection without a socket.
//
// Reads hand out the input in pieces of at most `read_size` bytes (0: as much as the reader's
// buffer takes), then end of stream (asio::error::eof), as a peer that sent everything and shut
// its side down; everything written is kept in `written()`. Completions are posted to the
// executor, never run inside the call. The transport checks the session's side of the contract in
// api/http/transport.h (one read and one write at a time, nothing after Close, no read once end of
// stream was reported) and counts violations in `misuse()` rather than failing, so a test can
// assert it and a fuzz target can abort on it.
//
// Thread-safety: as the Transport contract (the session's strand only); read the results once
// ServeConnection has returned.
#ifndef KMS_TESTS_SUPPORT_MEMORY_TRANSPORT_H_
#define KMS_TESTS_SUPPORT_MEMORY_TRANSPORT_H_

#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "api/http/transport.h"

namespace kms::testing {

// What a MemoryTransport saw; outlives the transport (the session owns the transport).
struct MemoryTransportLog {
  std::string written;       // every byte the session wrote, in order
  std::size_t reads = 0;     // read calls
  std::size_t writes = 0;    // write calls
  std::size_t misuse = 0;    // contract violations (see the header comment)
  bool eof_delivered = false;
  bool closed = false;
};

class MemoryTransport final : public api::http::Transport {
 public:
  MemoryTransport(boost::asio::any_io_executor executor, std::string input,
                  std::shared_ptr<MemoryTransportLog> log, std::size_t read_size = 0)
      : socket_(executor), input_(std::move(input)), log_(std::move(log)), read_size_(read_size) {}

  void AsyncHandshake(HandshakeCallback done) override {
    boost::asio::post(socket_.get_executor(), [done = std::move(done)] { done({}); });
  }

  void AsyncReadSome(boost::asio::mutable_buffer buffer, IoCallback done) override {
    ++log_->reads;
    if (reading_ || log_->closed || log_->eof_delivered) ++log_->misuse;
    reading_ = true;
    std::size_t n = std::min(buffer.size(), input_.size() - offset_);
    if (read_size_ != 0) n = std::min(n, read_size_);
    boost::system::error_code ec;
    if (log_->closed) {
      ec = boost::asio::error::operation_aborted;
      n = 0;
    } else if (n == 0 && offset_ == input_.size()) {
      ec = boost::asio::error::eof;
      log_->eof_delivered = true;
    } else {
      std::memcpy(buffer.data(), input_.data() + offset_, n);
      offset_ += n;
    }
    boost::asio::post(socket_.get_executor(), [this, done = std::move(done), ec, n] {
      reading_ = false;
      done(ec, n);
    });
  }

  void AsyncWrite(boost::asio::const_buffer buffer, IoCallback done) override {
    ++log_->writes;
    if (writing_ || log_->closed) ++log_->misuse;
    writing_ = true;
    boost::system::error_code ec;
    std::size_t n = buffer.size();
    if (log_->closed) {
      ec = boost::asio::error::operation_aborted;
      n = 0;
    } else {
      log_->written.append(static_cast<const char*>(buffer.data()), n);
    }
    boost::asio::post(socket_.get_executor(), [this, done = std::move(done), ec, n] {
      writing_ = false;
      done(ec, n);
    });
  }

  void Close() override { log_->closed = true; }

  // Never opened: the session only takes its executor.
  boost::asio::ip::tcp::socket& socket() override { return socket_; }

 private:
  boost::asio::ip::tcp::socket socket_;
  std::string input_;
  std::size_t offset_ = 0;
  std::shared_ptr<MemoryTransportLog> log_;
  std::size_t read_size_;
  bool reading_ = false;
  bool writing_ = false;
};

}  // namespace kms::testing

#endif  // KMS_TESTS_SUPPORT_MEMORY_TRANSPORT_H_
