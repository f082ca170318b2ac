// Routes a request to the door that serves its path: the AWS door at exactly "/", the Vault door
// under "/v1/", `/health` and so on. Exact paths win over prefixes; the longest prefix wins among
// prefixes; nothing matching gives the not-found handler (a plain 404 by default).
//
// A Router is itself a `Handler` (operator()), so it is what the server runs, and `LaneOf` is its
// `LaneSelector`: an exact path may be marked kProbe or kInline (api/http/server.h); everything
// else, prefixes included, is kWorker.
//
// Thread-safety: configure before the server starts; afterwards read-only, callable from any thread.
#ifndef KMS_API_HTTP_ROUTER_H_
#define KMS_API_HTTP_ROUTER_H_

#include <map>
#include <string>

#include "api/http/message.h"
#include "api/http/server.h"

namespace kms::api::http {

class Router {
 public:
  // Every method on exactly `path` (the handler checks the method: AWS answers its own errors).
  void Exact(std::string path, Handler handler, Lane lane = Lane::kWorker);
  // Every path starting with `prefix`.
  void Prefix(std::string prefix, Handler handler);
  void NotFound(Handler handler);

  HttpResponse operator()(const HttpRequest& request) const;
  // The lane of the exact path `request` names, kWorker for every other.
  Lane LaneOf(const HttpRequest& request) const;

 private:
  struct Route {
    Handler handler;
    Lane lane;
  };
  std::map<std::string, Route, std::less<>> exact_;
  std::map<std::string, Handler, std::less<>> prefix_;
  Handler not_found_;
};

}  // namespace kms::api::http

#endif  // KMS_API_HTTP_ROUTER_H_
