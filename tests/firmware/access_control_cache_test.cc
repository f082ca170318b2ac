// The access-control caches under concurrent use, on the fake HSM and a real SQLite store: the
// per-key cache of AccessControl (compiled key policy and grants) and the identity-policy cache of
// PrincipalRegistry. Other threads keep deciding, and so keep loading and re-filling both caches,
// while this thread writes; a decision made after a write has returned must see it, which holds only
// if a load that began before the write can never put its older answer back into the cache. The
// TSan pass runs this case ([concurrency]) for the data races no assertion can see.
#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "firmware/authz/access_control.h"
#include "firmware/authz/principals.h"
#include "tests/firmware/key_service_fixture.h"

namespace kms::firmware::authz {
namespace {

constexpr std::string_view kAccount = "111122223333";
const KeyRef kKey{"1234abcd-12ab-34cd-56ef-1234567890ab",
                  "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"};

// The account root delegates to identity policies; `allow_alice_encrypt` adds a key-policy Allow.
std::string KeyPolicy(bool allow_alice_encrypt) {
  std::string p = R"({"Version":"2012-10-17","Statement":[
      {"Sid":"Enable IAM User Permissions","Effect":"Allow",
       "Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"})";
  if (allow_alice_encrypt) {
    p += R"(,{"Sid":"Alice","Effect":"Allow",
       "Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Encrypt",
       "Resource":"*"})";
  }
  return p + "]}";
}

constexpr std::string_view kAliceMacPolicy =
    R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:GenerateMac","Resource":"*"}]})";

struct CacheFixture : testing::ServiceFixture {
  CacheFixture()
      : principals(*store, clock, std::string(kAccount)),
        access(Hsm(), *store, principals, clock) {}

  // Whether alice may `action` on kKey (`grant_operation` for grantable actions); "" on success,
  // else what went wrong (callable from any thread: Catch2's assertions are not).
  std::string Decide(std::string_view action, std::string_view grant_operation, bool& allowed) {
    AccessRequest r;
    r.action = std::string(action);
    r.key = &kKey;
    r.grant_operation = std::string(grant_operation);
    auto d = access.Decide(kAlice, r);
    if (!d) return std::string(action) + ": " + d.error().ToString();
    allowed = d->allowed;
    return "";
  }

  const Caller kAlice{"arn:aws:iam::111122223333:user/alice", "alice", false};
  const Caller kAdmin{"arn:aws:iam::111122223333:user/admin", "admin", true};
  PrincipalRegistry principals;
  AccessControl access;
};

TEST_CASE("access control: a write is seen by the next decision while other threads fill the caches",
          "[unit][concurrency]") {
  CacheFixture f;
  REQUIRE(f.principals.CreateUser("alice", false, "").has_value());

  std::atomic<bool> done{false};
  std::mutex mu;
  std::vector<std::string> failures;
  auto fail = [&](std::string what) {
    std::lock_guard lock(mu);
    failures.push_back(std::move(what));
  };
  std::vector<std::thread> readers;
  // Stops and joins the readers however this thread leaves the test (a failed REQUIRE throws).
  struct Join {
    std::atomic<bool>& done;
    std::vector<std::thread>& threads;
    ~Join() {
      done.store(true);
      for (std::thread& t : threads) t.join();
    }
  } join{done, readers};
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!done.load()) {
        bool allowed = false;
        for (auto [action, op] : {std::pair{"kms:Encrypt", "Encrypt"},
                                  std::pair{"kms:GenerateMac", "GenerateMac"},
                                  std::pair{"kms:Sign", "Sign"}}) {
          if (std::string e = f.Decide(action, op, allowed); !e.empty()) fail(e);
        }
        if (!f.access.ExplicitlyDenies(f.kAlice, "kms:Decrypt", kKey).has_value()) {
          fail("ExplicitlyDenies failed");
        }
        if (!f.principals.Identity("alice").has_value()) fail("Identity failed");
      }
    });
  }

  // Each round changes one of the three things a decision reads and checks the next decision.
  std::string grant_id;
  for (int round = 0; round < 60; ++round) {
    const bool on = round % 6 < 3;
    bool allowed = false;
    std::string error;
    switch (round % 3) {
      case 0: {  // the key policy (AccessControl's per-key cache)
        Status put = f.access.PutKeyPolicy(f.kAdmin, kKey, KeyPolicy(on), true);
        if (!put.ok()) FAIL(put.ToString());
        error = f.Decide("kms:Encrypt", "Encrypt", allowed);
        break;
      }
      case 1: {  // alice's identity policy (PrincipalRegistry's cache)
        Status put = f.principals.PutUserPolicy("alice", on ? kAliceMacPolicy : "");
        if (!put.ok()) FAIL(put.ToString());
        error = f.Decide("kms:GenerateMac", "GenerateMac", allowed);
        break;
      }
      case 2: {  // a grant (AccessControl's per-key cache again, through the grants)
        if (on) {
          GrantSpec spec;
          spec.key = kKey;
          spec.grantee_principal = f.kAlice.principal_arn;
          spec.operations = {"Sign"};
          auto made = f.access.CreateGrant(f.kAdmin, spec, AccessDecision{});
          if (!made) FAIL(made.error().ToString());
          grant_id = made->grant_id;
        } else {
          Status revoked = f.access.RevokeGrant(kKey, grant_id);
          if (!revoked.ok()) FAIL(revoked.ToString());
        }
        error = f.Decide("kms:Sign", "Sign", allowed);
        break;
      }
    }
    INFO("round " << round);
    REQUIRE(error.empty());
    REQUIRE(allowed == on);
  }
  done.store(true);
  for (std::thread& t : readers) t.join();
  readers.clear();
  INFO((failures.empty() ? std::string() : failures.front()));
  CHECK(failures.empty());
}

}  // namespace
}  // namespace kms::firmware::authz
