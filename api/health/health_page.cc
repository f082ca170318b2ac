#include "api/health/health_page.h"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <optional>
#include <string_view>

namespace kms::api::health {
namespace {

struct Verdict {
  unsigned status;
  std::string_view hsm;     // "ok", "degraded", "not checked"
  std::string_view reason;  // for readyz: empty when ready
  std::string_view audit = "not checked";
};

Verdict Evaluate(hal::Hsm* hsm, const ApplianceState& state) {
  if (!state.initialized) return {501, "not checked", "not initialized"};
  if (state.sealed || hsm == nullptr) return {503, "not checked", "sealed"};
  const std::string_view audit =
      !state.audit_healthy ? "not checked" : (state.audit_healthy() ? "ok" : "failing");
  if (!hsm->CheckHealth().ok()) return {503, "degraded", "hsm degraded", audit};
  if (audit == "failing") return {503, "ok", "audit log failing", audit};
  return {200, "ok", {}, audit};
}

// 405 for anything but GET and HEAD; nullopt when the method is fine.
std::optional<http::HttpResponse> WrongMethod(const http::HttpRequest& request,
                                              std::string_view content_type,
                                              std::string_view body) {
  if (request.method == "GET" || request.method == "HEAD") return std::nullopt;
  http::HttpResponse response;
  response.status = 405;
  response.SetHeader("Allow", "GET, HEAD");
  response.SetHeader("Content-Type", std::string(content_type));
  response.body = std::string(body);
  return response;
}

http::HttpResponse Text(const http::HttpRequest& request, unsigned status, std::string_view text) {
  http::HttpResponse response;
  response.status = status;
  response.SetHeader("Content-Type", "text/plain; charset=utf-8");
  response.SetHeader("Cache-Control", "no-store");
  if (request.method == "GET") response.body = std::string(text) + "\n";
  return response;
}

}  // namespace

http::HttpResponse HealthPage(hal::Hsm& hsm, const ApplianceState& state,
                              const http::HttpRequest& request) {
  return HealthPage(&hsm, state, request);
}

http::HttpResponse HealthPage(hal::Hsm* hsm, const ApplianceState& state,
                              const http::HttpRequest& request) {
  if (auto wrong = WrongMethod(request, "application/json", R"({"errors":["GET /health"]})")) {
    return std::move(*wrong);
  }
  const Verdict verdict = Evaluate(hsm, state);
  boost::json::object body;
  body["initialized"] = state.initialized;
  body["sealed"] = state.sealed;
  body["standby"] = false;
  body["hsm"] = verdict.hsm;
  body["audit"] = verdict.audit;
  body["mode"] = state.mode;
  body["version"] = state.version;
  http::HttpResponse response;
  response.status = verdict.status;
  response.SetHeader("Content-Type", "application/json");
  response.SetHeader("Cache-Control", "no-store");
  if (request.method == "GET") response.body = boost::json::serialize(body);
  return response;
}

http::HttpResponse ReadinessPage(hal::Hsm& hsm, const ApplianceState& state,
                                 const http::HttpRequest& request) {
  return ReadinessPage(&hsm, state, request);
}

http::HttpResponse ReadinessPage(hal::Hsm* hsm, const ApplianceState& state,
                                 const http::HttpRequest& request) {
  if (auto wrong = WrongMethod(request, "text/plain; charset=utf-8", "GET /readyz\n")) {
    return std::move(*wrong);
  }
  const Verdict verdict = Evaluate(hsm, state);
  // Kubernetes treats any 2xx/3xx as ready and everything else as not: 503 for every reason.
  return verdict.status == 200 ? Text(request, 200, "ok") : Text(request, 503, verdict.reason);
}

http::HttpResponse LivenessPage(const http::HttpRequest& request) {
  if (auto wrong = WrongMethod(request, "text/plain; charset=utf-8", "GET /livez\n")) {
    return std::move(*wrong);
  }
  return Text(request, 200, "ok");
}

}  // namespace kms::api::health
