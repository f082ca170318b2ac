#include "provisioning/token_init.h"

#include <sys/random.h>

#include <algorithm>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "hal/pkcs11_policy.h"
#include "pkcs11/attributes.h"
#include "pkcs11/rv.h"
#include "pkcs11/token.h"

namespace kms::provisioning {
namespace {

constexpr std::size_t kPinEntropyBytes = 16;  // 128 bits, written as 32 hex characters

// The PIN as hex text, built straight into wiped storage.
SecretBytes HexPin(const SecretBytes& random) {
  static constexpr char kHex[] = "0123456789abcdef";
  SecretBytes pin(random.size() * 2);
  auto out = pin.ExposeSecretMutable();
  std::size_t i = 0;
  for (std::uint8_t b : random.ExposeSecret()) {
    out[i++] = static_cast<std::uint8_t>(kHex[b >> 4]);
    out[i++] = static_cast<std::uint8_t>(kHex[b & 0x0F]);
  }
  return pin;
}

unsigned char* PinPtr(const SecretBytes& pin) {
  return const_cast<unsigned char*>(pin.ExposeSecret().data());
}
CK_ULONG PinLen(const SecretBytes& pin) { return static_cast<CK_ULONG>(pin.size()); }

StatusOr<SecretBytes> RandomUserPin(pkcs11::Session& session) {
  KMS_ASSIGN_OR_RETURN(SecretBytes random, session.GenerateRandom(kPinEntropyBytes));
  return HexPin(random);
}

}  // namespace

Status CheckTokenLabel(std::string_view label) {
  if (label.empty() || label.size() > 32) {
    return InvalidArgumentError("token label must be 1..32 characters");
  }
  // PKCS#11 v2.40 §3.2: the label is blank padded, so a blank at either end could never be found
  // again by the trimmed comparison every lookup (pkcs11::Module::FindToken) makes.
  if (label.front() == ' ' || label.back() == ' ') {
    return InvalidArgumentError("token label must not start or end with a blank");
  }
  return Status();
}

StatusOr<CK_SLOT_ID> FindSlotForNewToken(const pkcs11::Module& module, std::string_view label) {
  KMS_RETURN_IF_ERROR(CheckTokenLabel(label));
  KMS_ASSIGN_OR_RETURN(std::vector<CK_SLOT_ID> slots, module.SlotList(true));
  std::optional<CK_SLOT_ID> free_slot;
  // Every slot is looked at before one is chosen: a token with the label anywhere is a refusal,
  // even when a free slot comes first.
  for (CK_SLOT_ID slot : slots) {
    auto info = module.TokenInfo(slot);
    if (!info.has_value()) continue;
    if ((info->flags & CKF_TOKEN_INITIALIZED) == 0) {
      if (!free_slot) free_slot = slot;
      continue;
    }
    if (pkcs11::TrimPadded(info->label, sizeof(info->label)) == label) {
      return AlreadyExistsError("a token labelled '" + std::string(label) +
                                "' already exists in slot " + std::to_string(slot) +
                                ": refusing to initialise over it");
    }
  }
  // SoftHSM2 always offers one free slot holding an uninitialised token; a hardware HSM needs its
  // token cleared by its vendor's tool first.
  if (!free_slot) return FailedPreconditionError("the module offers no uninitialised token");
  return *free_slot;
}

StatusOr<InitializedToken> InitTokenWithDomainKey(pkcs11::Module& module, CK_SLOT_ID slot,
                                                  const TokenInitRequest& request) {
  KMS_RETURN_IF_ERROR(CheckTokenLabel(request.token_label));
  CK_FUNCTION_LIST* f = module.functions();

  // No session can be opened on an uninitialised token, so the module RNG is out of reach for the
  // first SO PIN: take it from the kernel, then replace it below with one from the module.
  SecretBytes seed(kPinEntropyBytes);
  if (::getrandom(seed.ExposeSecretMutable().data(), seed.size(), 0) !=
      static_cast<ssize_t>(seed.size())) {
    return InternalError("getrandom failed");
  }
  SecretBytes first_so_pin = HexPin(seed);
  unsigned char label[32];
  std::fill(std::begin(label), std::end(label), ' ');  // PKCS#11 v2.40 §5.5: 32 bytes, blank padded
  std::copy(request.token_label.begin(), request.token_label.end(), label);
  KMS_RETURN_IF_ERROR(pkcs11::RvToStatus(
      f->C_InitToken(slot, PinPtr(first_so_pin), PinLen(first_so_pin), label), "C_InitToken"));

  // SoftHSM2 gives an initialised token a new slot id: look it up again, by label (unique: the
  // caller found no other token with it).
  InitializedToken token;
  KMS_ASSIGN_OR_RETURN(token.slot, module.FindToken(request.token_label));
  KMS_ASSIGN_OR_RETURN(pkcs11::Session session, pkcs11::Session::Open(module, token.slot, true));
  KMS_RETURN_IF_ERROR(pkcs11::Login::SecurityOfficer(session, first_so_pin));
  KMS_ASSIGN_OR_RETURN(SecretBytes so_random, session.GenerateRandom(kPinEntropyBytes));
  token.so_pin = HexPin(so_random);
  KMS_RETURN_IF_ERROR(
      pkcs11::RvToStatus(f->C_SetPIN(session.handle(), PinPtr(first_so_pin), PinLen(first_so_pin),
                                     PinPtr(token.so_pin), PinLen(token.so_pin)),
                         "C_SetPIN"));
  first_so_pin.clear();
  KMS_ASSIGN_OR_RETURN(token.user_pin,
                       request.user_pin ? request.user_pin(session) : RandomUserPin(session));
  if (token.user_pin.empty()) return InternalError("the user PIN source returned an empty PIN");
  KMS_RETURN_IF_ERROR(pkcs11::RvToStatus(
      f->C_InitPIN(session.handle(), PinPtr(token.user_pin), PinLen(token.user_pin)), "C_InitPIN"));
  if (request.while_so) KMS_RETURN_IF_ERROR(request.while_so(session));
  // The SO may not create private objects (docs/softhsm2.md "Sessions and login"): switch to the
  // user.
  KMS_RETURN_IF_ERROR(pkcs11::Login::Logout(session));
  KMS_RETURN_IF_ERROR(pkcs11::Login::User(session, token.user_pin));

  CK_OBJECT_HANDLE dk = CK_INVALID_HANDLE;
  if (request.domain_key) {
    KMS_ASSIGN_OR_RETURN(dk, request.domain_key(session));
  } else {
    CK_MECHANISM keygen{CKM_AES_KEY_GEN, nullptr, 0};
    pkcs11::AttributeTemplate dk_template = hal::DomainKeyTemplate(request.domain_key_label);
    KMS_ASSIGN_OR_RETURN(dk, session.GenerateKey(keygen, dk_template));
  }
  KMS_RETURN_IF_ERROR(hal::CheckDomainKeyPolicy(session, dk));
  KMS_ASSIGN_OR_RETURN(CK_TOKEN_INFO info, module.TokenInfo(token.slot));
  token.serial = pkcs11::TrimPadded(info.serialNumber, sizeof(info.serialNumber));
  token.model = pkcs11::TrimPadded(info.model, sizeof(info.model));
  // Closing the only session ends the user's login too (see the header).
  KMS_RETURN_IF_ERROR(session.Close());
  return token;
}

}  // namespace kms::provisioning
