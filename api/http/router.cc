#include "api/http/router.h"

namespace kms::api::http {

void Router::Exact(std::string path, Handler handler, Lane lane) {
  exact_.insert_or_assign(std::move(path), Route{std::move(handler), lane});
}
void Router::Prefix(std::string prefix, Handler handler) {
  prefix_.insert_or_assign(std::move(prefix), std::move(handler));
}
void Router::NotFound(Handler handler) { not_found_ = std::move(handler); }

HttpResponse Router::operator()(const HttpRequest& request) const {
  const std::string_view path = request.Path();
  if (auto it = exact_.find(path); it != exact_.end()) return it->second.handler(request);
  const Handler* best = nullptr;
  std::size_t best_len = 0;
  for (const auto& [prefix, handler] : prefix_) {
    if (path.starts_with(prefix) && prefix.size() >= best_len) {
      best = &handler;
      best_len = prefix.size();
    }
  }
  if (best) return (*best)(request);
  if (not_found_) return not_found_(request);
  HttpResponse r;
  r.status = 404;
  r.headers.emplace_back("Content-Type", "text/plain");
  r.body = "Not found\n";
  return r;
}

Lane Router::LaneOf(const HttpRequest& request) const {
  const auto it = exact_.find(request.Path());
  return it == exact_.end() ? Lane::kWorker : it->second.lane;
}

}  // namespace kms::api::http
