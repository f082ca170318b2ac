"""Teaches an older botocore KMS model the rotation members AWS added in 2024.

Debian 12's boto3 (botocore 1.29) and aws-cli 2.9 predate RotateKeyOnDemand, ListKeyRotations and
RotationPeriodInDays, which the appliance implements. botocore loads service models from
AWS_DATA_PATH before its own, so writing the installed model plus these shapes (as in AWS's current
KMS model, docs/aws-kms-protocol.md "Operations") into a folder on AWS_DATA_PATH lets the
unmodified clients send them: the requests are still built, signed and parsed by the real client
code.
"""
import copy
import json
import os


def extend(model):
    m = copy.deepcopy(model)
    shapes, ops = m["shapes"], m["operations"]
    shapes.setdefault("RotationPeriodInDaysType", {"type": "integer", "max": 2560, "min": 90})
    shapes["EnableKeyRotationRequest"]["members"]["RotationPeriodInDays"] = {
        "shape": "RotationPeriodInDaysType"}
    status = shapes["GetKeyRotationStatusResponse"]["members"]
    status.setdefault("KeyId", {"shape": "KeyIdType"})
    status["RotationPeriodInDays"] = {"shape": "RotationPeriodInDaysType"}
    status["NextRotationDate"] = {"shape": "DateType"}
    status["OnDemandRotationStartDate"] = {"shape": "DateType"}
    shapes["RotationTypeE2e"] = {"type": "string", "enum": ["AUTOMATIC", "ON_DEMAND"]}
    shapes["RotationsListEntry"] = {"type": "structure", "members": {
        "KeyId": {"shape": "KeyIdType"}, "RotationDate": {"shape": "DateType"},
        "RotationType": {"shape": "RotationTypeE2e"}}}
    shapes["RotationsList"] = {"type": "list", "member": {"shape": "RotationsListEntry"}}
    shapes["RotateKeyOnDemandRequest"] = {"type": "structure", "required": ["KeyId"],
                                          "members": {"KeyId": {"shape": "KeyIdType"}}}
    shapes["RotateKeyOnDemandResponse"] = {"type": "structure",
                                           "members": {"KeyId": {"shape": "KeyIdType"}}}
    shapes["ListKeyRotationsRequest"] = {"type": "structure", "required": ["KeyId"], "members": {
        "KeyId": {"shape": "KeyIdType"}, "Limit": {"shape": "LimitType"},
        "Marker": {"shape": "MarkerType"}}}
    shapes["ListKeyRotationsResponse"] = {"type": "structure", "members": {
        "Rotations": {"shape": "RotationsList"}, "NextMarker": {"shape": "MarkerType"},
        "Truncated": {"shape": "BooleanType"}}}
    errors = [{"shape": s} for s in ("NotFoundException", "InvalidArnException",
                                     "KMSInternalException", "KMSInvalidStateException",
                                     "UnsupportedOperationException", "DisabledException",
                                     "LimitExceededException", "InvalidMarkerException")
              if s in shapes]
    for name in ("RotateKeyOnDemand", "ListKeyRotations"):
        ops[name] = {"name": name, "http": {"method": "POST", "requestUri": "/"},
                     "input": {"shape": name + "Request"}, "output": {"shape": name + "Response"},
                     "errors": errors}
    return m


def write_extended(source_path, data_dir):
    """Writes <data_dir>/kms/2014-11-01/service-2.json; returns data_dir."""
    with open(source_path) as f:
        model = json.load(f)
    out = os.path.join(data_dir, "kms", "2014-11-01")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "service-2.json"), "w") as f:
        json.dump(extend(model), f)
    return data_dir
