/*-------------------------------------------------------------------------
 *
 * ocpp.c
 *	  OCPP 1.6J messages from a charge point: checking each payload against
 *	  the spec's JSON schema and mapping it to what evcharge stores.
 *
 * The schemas are tables of fields (name, type, required, length, enum,
 * nested object): a violation gets the CALLERROR the spec names for it
 * (TypeConstraintViolation for a wrong type, OccurenceConstraintViolation
 * for a missing field, PropertyConstraintViolation for a bad value,
 * FormationViolation for a payload that is not an object or has fields
 * the schema does not know).  A valid message becomes an Item for the
 * writer (heartbeat and pile_record rows, the transaction mapping, the
 * registry's firmware) and an answer: at once for what is not a
 * transaction message, after the commit for StartTransaction,
 * StopTransaction, transaction MeterValues and Authorize (docs/bridge.md,
 * "The durability rule").  Nothing here touches the database.
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

typedef enum FieldType
{
	F_STRING,
	F_INT,
	F_NUMBER,
	F_TIME,
	F_OBJECT,
	F_ARRAY						/* of objects of sub */
} FieldType;

/* NOLINTNEXTLINE(clang-analyzer-optin.performance.Padding): a few static tables, read by position */
typedef struct Field
{
	const char *name;
	FieldType	type;
	bool		required;
	int			max_len;		/* strings; 0: no limit */
	const char *const *enumv;	/* NULL-terminated, or NULL */
	const struct Field *sub;	/* F_OBJECT, F_ARRAY items */
	int			min;			/* F_INT minimum, F_ARRAY minItems */
} Field;

#define END {NULL, 0, false, 0, NULL, NULL, 0}

static const char *const error_codes[] = {"ConnectorLockFailure", "EVCommunicationError", "GroundFailure",
	"HighTemperature", "InternalError", "LocalListConflict", "NoError", "OtherError", "OverCurrentFailure",
	"PowerMeterFailure", "PowerSwitchFailure", "ReaderFailure", "ResetFailure", "UnderVoltage",
"OverVoltage", "WeakSignal", NULL};
static const char *const statuses[] = {"Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV",
"Finishing", "Reserved", "Unavailable", "Faulted", NULL};
static const char *const stop_reasons[] = {"EmergencyStop", "EVDisconnected", "HardReset", "Local", "Other",
"PowerLoss", "Reboot", "Remote", "SoftReset", "UnlockCommand", "DeAuthorized", NULL};
static const char *const contexts[] = {"Interruption.Begin", "Interruption.End", "Sample.Clock",
"Sample.Periodic", "Transaction.Begin", "Transaction.End", "Trigger", "Other", NULL};
static const char *const formats[] = {"Raw", "SignedData", NULL};
static const char *const measurands[] = {"Energy.Active.Export.Register", "Energy.Active.Import.Register",
	"Energy.Reactive.Export.Register", "Energy.Reactive.Import.Register", "Energy.Active.Export.Interval",
	"Energy.Active.Import.Interval", "Energy.Reactive.Export.Interval", "Energy.Reactive.Import.Interval",
	"Power.Active.Export", "Power.Active.Import", "Power.Offered", "Power.Reactive.Export",
	"Power.Reactive.Import", "Power.Factor", "Current.Import", "Current.Export", "Current.Offered", "Voltage",
"Frequency", "Temperature", "SoC", "RPM", NULL};
static const char *const phases[] = {"L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3",
"L3-L1", NULL};
static const char *const locations[] = {"Cable", "EV", "Inlet", "Outlet", "Body", NULL};
static const char *const units[] = {"Wh", "kWh", "varh", "kvarh", "W", "kW", "VA", "kVA", "var", "kvar",
"A", "V", "K", "Celcius", "Celsius", "Fahrenheit", "Percent", NULL};
static const char *const fw_statuses[] = {"Downloaded", "DownloadFailed", "Downloading", "Idle",
"InstallationFailed", "Installing", "Installed", NULL};
static const char *const diag_statuses[] = {"Idle", "Uploaded", "UploadFailed", "Uploading", NULL};

static const Field sampled_value[] = {
	{"value", F_STRING, true, 0, NULL, NULL, 0},
	{"context", F_STRING, false, 0, contexts, NULL, 0},
	{"format", F_STRING, false, 0, formats, NULL, 0},
	{"measurand", F_STRING, false, 0, measurands, NULL, 0},
	{"phase", F_STRING, false, 0, phases, NULL, 0},
	{"location", F_STRING, false, 0, locations, NULL, 0},
	{"unit", F_STRING, false, 0, units, NULL, 0},
	END
};
static const Field meter_value[] = {
	{"timestamp", F_TIME, true, 0, NULL, NULL, 0},
	{"sampledValue", F_ARRAY, true, 0, NULL, sampled_value, 0},
	END
};
static const Field boot_notification[] = {
	{"chargePointVendor", F_STRING, true, 20, NULL, NULL, 0},
	{"chargePointModel", F_STRING, true, 20, NULL, NULL, 0},
	{"chargePointSerialNumber", F_STRING, false, 25, NULL, NULL, 0},
	{"chargeBoxSerialNumber", F_STRING, false, 25, NULL, NULL, 0},
	{"firmwareVersion", F_STRING, false, 50, NULL, NULL, 0},
	{"iccid", F_STRING, false, 20, NULL, NULL, 0},
	{"imsi", F_STRING, false, 20, NULL, NULL, 0},
	{"meterType", F_STRING, false, 25, NULL, NULL, 0},
	{"meterSerialNumber", F_STRING, false, 25, NULL, NULL, 0},
	END
};
static const Field heartbeat[] = {END};
static const Field status_notification[] = {
	{"connectorId", F_INT, true, 0, NULL, NULL, 0},
	{"errorCode", F_STRING, true, 0, error_codes, NULL, 0},
	{"info", F_STRING, false, 50, NULL, NULL, 0},
	{"status", F_STRING, true, 0, statuses, NULL, 0},
	{"timestamp", F_TIME, false, 0, NULL, NULL, 0},
	{"vendorId", F_STRING, false, 255, NULL, NULL, 0},
	{"vendorErrorCode", F_STRING, false, 50, NULL, NULL, 0},
	END
};
static const Field authorize[] = {
	{"idTag", F_STRING, true, 20, NULL, NULL, 0},
	END
};
static const Field start_transaction[] = {
	{"connectorId", F_INT, true, 0, NULL, NULL, 1},
	{"idTag", F_STRING, true, 20, NULL, NULL, 0},
	{"meterStart", F_INT, true, 0, NULL, NULL, INT32_MIN},
	{"reservationId", F_INT, false, 0, NULL, NULL, INT32_MIN},
	{"timestamp", F_TIME, true, 0, NULL, NULL, 0},
	END
};
static const Field meter_values[] = {
	{"connectorId", F_INT, true, 0, NULL, NULL, 0},
	{"transactionId", F_INT, false, 0, NULL, NULL, INT32_MIN},
	{"meterValue", F_ARRAY, true, 0, NULL, meter_value, 1},
	END
};
static const Field stop_transaction[] = {
	{"idTag", F_STRING, false, 20, NULL, NULL, 0},
	{"meterStop", F_INT, true, 0, NULL, NULL, INT32_MIN},
	{"timestamp", F_TIME, true, 0, NULL, NULL, 0},
	{"transactionId", F_INT, true, 0, NULL, NULL, INT32_MIN},
	{"reason", F_STRING, false, 0, stop_reasons, NULL, 0},
	{"transactionData", F_ARRAY, false, 0, NULL, meter_value, 0},
	END
};
static const Field data_transfer[] = {
	{"vendorId", F_STRING, true, 255, NULL, NULL, 0},
	{"messageId", F_STRING, false, 50, NULL, NULL, 0},
	{"data", F_STRING, false, 0, NULL, NULL, 0},
	END
};
static const Field firmware_status[] = {
	{"status", F_STRING, true, 0, fw_statuses, NULL, 0},
	END
};
static const Field diagnostics_status[] = {
	{"status", F_STRING, true, 0, diag_statuses, NULL, 0},
	END
};

typedef struct Action
{
	const char *name;
	const Field *schema;
} Action;

static const Action actions[] = {
	{"BootNotification", boot_notification},
	{"Heartbeat", heartbeat},
	{"StatusNotification", status_notification},
	{"Authorize", authorize},
	{"StartTransaction", start_transaction},
	{"MeterValues", meter_values},
	{"StopTransaction", stop_transaction},
	{"DataTransfer", data_transfer},
	{"FirmwareStatusNotification", firmware_status},
	{"DiagnosticsStatusNotification", diagnostics_status},
	{NULL, NULL}
};

/* Actions of OCPP 1.6 that only the central system sends. */
static const char *const central_actions[] = {"CancelReservation", "ChangeAvailability",
	"ChangeConfiguration", "ClearCache", "ClearChargingProfile", "GetCompositeSchedule", "GetConfiguration",
	"GetDiagnostics", "GetLocalListVersion", "RemoteStartTransaction", "RemoteStopTransaction",
	"ReserveNow", "Reset", "SendLocalList", "SetChargingProfile", "TriggerMessage", "UnlockConnector",
"UpdateFirmware", NULL};

static bool
InList(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

/*
 * Check obj against fields; NULL when it conforms, else the CALLERROR code,
 * with why naming the field (path is where obj sits).
 */
static const char *
CheckObject(json_t *obj, const Field *fields, const char *path, char *why, size_t whylen)
{
	const char *key;
	json_t	   *v;

	if (!json_is_object(obj))
	{
		snprintf(why, whylen, "%s is not a JSON object", path);
		return "FormationViolation";
	}
	json_object_foreach(obj, key, v)
	{
		const Field *f;

		for (f = fields; f->name; f++)
			if (strcmp(f->name, key) == 0)
				break;
		if (f->name == NULL)
		{
			snprintf(why, whylen, "%s has a field the schema does not know: \"%.40s\"", path, key);
			return "FormationViolation";
		}
	}
	for (const Field *f = fields; f->name; f++)
	{
		char		sub[160];

		v = json_object_get(obj, f->name);
		snprintf(sub, sizeof(sub), "%s.%s", path, f->name);
		if (v == NULL)
		{
			if (f->required)
			{
				snprintf(why, whylen, "%s is required", sub);
				return "OccurenceConstraintViolation";
			}
			continue;
		}
		switch (f->type)
		{
			case F_STRING:
			case F_TIME:
				if (!json_is_string(v))
				{
					snprintf(why, whylen, "%s must be a string", sub);
					return "TypeConstraintViolation";
				}
				if (strlen(json_string_value(v)) != json_string_length(v))
				{
					snprintf(why, whylen, "%s holds a NUL character", sub);
					return "PropertyConstraintViolation";
				}
				if (f->max_len && json_string_length(v) > (size_t) f->max_len)
				{
					snprintf(why, whylen, "%s is longer than %d characters", sub, f->max_len);
					return "PropertyConstraintViolation";
				}
				if (f->enumv && !InList(f->enumv, json_string_value(v)))
				{
					snprintf(why, whylen, "%s \"%.40s\" is not one of the values the spec allows", sub,
							 json_string_value(v));
					return "PropertyConstraintViolation";
				}
				if (f->type == F_TIME)
				{
					int64_t		us;

					if (!ParseIsoTime(json_string_value(v), &us))
					{
						snprintf(why, whylen, "%s \"%.40s\" is not an RFC 3339 date-time such as 2026-11-20T08:00:00Z",
								 sub, json_string_value(v));
						return "PropertyConstraintViolation";
					}
				}
				break;
			case F_INT:
				if (!json_is_integer(v))
				{
					snprintf(why, whylen, "%s must be an integer", sub);
					return "TypeConstraintViolation";
				}
				if (json_integer_value(v) > INT32_MAX || json_integer_value(v) < f->min)
				{
					snprintf(why, whylen, "%s %lld is out of range", sub, (long long) json_integer_value(v));
					return "PropertyConstraintViolation";
				}
				break;
			case F_NUMBER:
				if (!json_is_number(v))
				{
					snprintf(why, whylen, "%s must be a number", sub);
					return "TypeConstraintViolation";
				}
				break;
			case F_OBJECT:
				{
					const char *c = CheckObject(v, f->sub, sub, why, whylen);

					if (c)
						return c;
				}
				break;
			case F_ARRAY:
				{
					size_t		i;
					json_t	   *e;

					if (!json_is_array(v))
					{
						snprintf(why, whylen, "%s must be an array", sub);
						return "TypeConstraintViolation";
					}
					if (json_array_size(v) < (size_t) f->min)
					{
						snprintf(why, whylen, "%s needs at least %d item(s)", sub, f->min);
						return "OccurenceConstraintViolation";
					}
					json_array_foreach(v, i, e)
					{
						char		el[200];
						const char *c;

						snprintf(el, sizeof(el), "%s[%zu]", sub, i);
						c = CheckObject(e, f->sub, el, why, whylen);
						if (c)
							return c;
					}
				}
				break;
		}
	}
	return NULL;
}

/*
 * Check a CALL's payload: NULL when valid, else the CALLERROR code (with
 * NotImplemented for an action OCPP 1.6 does not have, NotSupported for one
 * only the central system sends).
 */
const char *
OcppValidate(const char *action, json_t *payload, char *why, size_t whylen)
{
	for (const Action *a = actions; a->name; a++)
		if (strcmp(a->name, action) == 0)
			return CheckObject(payload, a->schema, a->name, why, whylen);
	if (InList(central_actions, action))
	{
		snprintf(why, whylen, "%.40s is sent by the central system, not by a charge point", action);
		return "NotSupported";
	}
	snprintf(why, whylen, "unknown action \"%.40s\"", action);
	return "NotImplemented";
}

static const char *
Str(json_t *obj, const char *key)
{
	json_t	   *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int64_t
Int(json_t *obj, const char *key, int64_t dflt)
{
	json_t	   *v = json_object_get(obj, key);

	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static int64_t
TimeOf(json_t *obj, const char *key, int64_t dflt)
{
	const char *s = Str(obj, key);
	int64_t		us;

	return s && ParseIsoTime(s, &us) ? us : dflt;
}

/* StatusNotification status to the heartbeat's gun_status (PROTOCOLS.md). */
static const char *
GunStatus(const char *ocpp)
{
	if (strcmp(ocpp, "Preparing") == 0)
		return "plugged";
	if (strcmp(ocpp, "Charging") == 0)
		return "charging";
	if (strcmp(ocpp, "SuspendedEV") == 0 || strcmp(ocpp, "SuspendedEVSE") == 0)
		return "suspended";
	if (strcmp(ocpp, "Finishing") == 0)
		return "occupied";
	if (strcmp(ocpp, "Faulted") == 0)
		return "fault";
	return "idle";				/* Available, Reserved, Unavailable */
}

/* ChargePointErrorCode to a fault code: NoError 0, OtherError 99, others 1-14. */
static int
FaultCode(const char *code)
{
	int			n = 0;

	if (strcmp(code, "NoError") == 0)
		return 0;
	if (strcmp(code, "OtherError") == 0)
		return 99;
	for (const char *const *c = error_codes; *c; c++)
	{
		if (strcmp(*c, "NoError") != 0 && strcmp(*c, "OtherError") != 0)
			n++;
		if (strcmp(*c, code) == 0)
			return n;
	}
	return 99;
}

/*
 * The samples of a meterValue array: per meterValue its timestamp and the
 * phase-less readings of the energy register (Wh or kWh), power, voltage,
 * current and SoC.  A meterValue without the energy register is left out:
 * a charging heartbeat needs a meter reading, and none is invented.
 */
static int
ReadSamples(json_t *arr, Sample **out)
{
	size_t		i;
	json_t	   *mv;
	int			n = 0;

	*out = NULL;
	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return 0;
	*out = calloc(json_array_size(arr), sizeof(Sample));
	json_array_foreach(arr, i, mv)
	{
		Sample	   *s = &(*out)[n];
		size_t		j;
		json_t	   *sv;

		s->meter_wh = -1;
		s->power_w = INT64_MIN;
		s->voltage_v = NAN;
		s->current_a = NAN;
		s->soc = -1;
		if (!ParseIsoTime(Str(mv, "timestamp"), &s->ts_us))
			continue;
		json_array_foreach(json_object_get(mv, "sampledValue"), j, sv)
		{
			const char *m = Str(sv, "measurand") ? Str(sv, "measurand") : "Energy.Active.Import.Register";
			const char *unit = Str(sv, "unit");
			char	   *end;
			double		v = strtod(Str(sv, "value"), &end);

			if (end == Str(sv, "value") || *end != '\0' || !isfinite(v) || Str(sv, "phase"))
				continue;
			if (strcmp(m, "Energy.Active.Import.Register") == 0 && v >= 0 && v < 1e15)
				s->meter_wh = (int64_t) llround(unit && strcmp(unit, "kWh") == 0 ? v * 1000 : v);
			else if (strcmp(m, "Power.Active.Import") == 0 && fabs(v) < 1e9)
				s->power_w = (int64_t) llround(unit && strcmp(unit, "kW") == 0 ? v * 1000 : v);
			else if (strcmp(m, "Voltage") == 0 && fabs(v) < 99999)
				s->voltage_v = v;
			else if (strcmp(m, "Current.Import") == 0 && fabs(v) < 99999)
				s->current_a = v;
			else if (strcmp(m, "SoC") == 0 && v >= 0 && v <= 1000)
				s->soc = (int) lround(v);
		}
		if (s->meter_wh >= 0)
			n++;
	}
	return n;
}

static Item *
NewItem(Conn *conn, const Frame *frame, ItemKind kind, json_t *p)
{
	Item	   *it = calloc(1, sizeof(Item));

	it->kind = kind;
	it->conn = conn;
	conn->refs++;
	snprintf(it->msg_id, sizeof(it->msg_id), "%s", frame->id);
	snprintf(it->pile, sizeof(it->pile), "%s", conn->pile);
	it->received_us = NowUs();
	it->connector = (int) Int(p, "connectorId", 0);
	it->transaction_id = (int) Int(p, "transactionId", -1);
	it->ts_us = TimeOf(p, "timestamp", it->received_us);
	return it;
}

static json_t *
CurrentTime(void)
{
	char		ts[40];

	FormatIsoTime(NowUs(), ts, sizeof(ts));
	return json_string(ts);
}

/*
 * Handle a valid CALL: what to queue and what to answer now.  The payload
 * has passed OcppValidate().
 */
void
OcppHandleCall(Conn *conn, const Frame *frame, MapResult *res)
{
	const char *a = frame->action;
	json_t	   *p = frame->payload;
	Item	   *it = NULL;

	res->item = NULL;
	res->reply = NULL;
	if (strcmp(a, "BootNotification") == 0)
	{
		it = NewItem(conn, frame, ITEM_BOOT, p);
		snprintf(it->firmware, sizeof(it->firmware), "%s", Str(p, "firmwareVersion") ? Str(p, "firmwareVersion") : "");
		res->reply = FrameCallResult(frame->id, json_pack("{s:s,s:o,s:i}", "status", "Accepted",
														  "currentTime", CurrentTime(),
														  "interval", config.heartbeat_interval));
		LogEvent(conn->pile, "BootNotification: %s %s, firmware %s", Str(p, "chargePointVendor"),
				 Str(p, "chargePointModel"), it->firmware[0] ? it->firmware : "(not given)");
		if (it->firmware[0] == '\0')
		{
			/* Nothing for the registry. */
			conn->refs--;
			free(it);
			it = NULL;
		}
	}
	else if (strcmp(a, "Heartbeat") == 0)
		res->reply = FrameCallResult(frame->id, json_pack("{s:o}", "currentTime", CurrentTime()));
	else if (strcmp(a, "StatusNotification") == 0)
	{
		res->reply = FrameCallResult(frame->id, json_object());
		if (Int(p, "connectorId", 0) == 0)
			LogEvent(conn->pile, "StatusNotification for the whole charge point (connector 0): %s, %s, not a gun's status",
					 Str(p, "status"), Str(p, "errorCode"));
		else
		{
			it = NewItem(conn, frame, ITEM_STATUS, p);
			it->status = GunStatus(Str(p, "status"));
			it->fault_code = strcmp(Str(p, "status"), "Faulted") == 0 || strcmp(Str(p, "errorCode"), "NoError") != 0
				? FaultCode(Str(p, "errorCode")) : 0;
			if (strcmp(it->status, "fault") == 0 && it->fault_code == 0)
				it->fault_code = 99;
		}
	}
	else if (strcmp(a, "Authorize") == 0)
	{
		it = NewItem(conn, frame, ITEM_AUTHORIZE, p);
		it->answer_after_commit = true;
		snprintf(it->id_tag, sizeof(it->id_tag), "%s", Str(p, "idTag"));
	}
	else if (strcmp(a, "StartTransaction") == 0)
	{
		it = NewItem(conn, frame, ITEM_START, p);
		it->answer_after_commit = true;
		snprintf(it->id_tag, sizeof(it->id_tag), "%s", Str(p, "idTag"));
		it->meter = Int(p, "meterStart", 0);
	}
	else if (strcmp(a, "MeterValues") == 0)
	{
		it = NewItem(conn, frame, ITEM_METER, p);
		it->nsamples = ReadSamples(json_object_get(p, "meterValue"), &it->samples);
		if (it->transaction_id >= 0 && json_object_get(p, "transactionId"))
			it->answer_after_commit = true;
		else
		{
			it->transaction_id = -1;
			res->reply = FrameCallResult(frame->id, json_object());
		}
	}
	else if (strcmp(a, "StopTransaction") == 0)
	{
		it = NewItem(conn, frame, ITEM_STOP, p);
		it->answer_after_commit = true;
		it->meter = Int(p, "meterStop", 0);
		snprintf(it->id_tag, sizeof(it->id_tag), "%s", Str(p, "idTag") ? Str(p, "idTag") : "");
		snprintf(it->reason, sizeof(it->reason), "%s", Str(p, "reason") ? Str(p, "reason") : "Local");
		it->nsamples = ReadSamples(json_object_get(p, "transactionData"), &it->samples);
	}
	else if (strcmp(a, "DataTransfer") == 0)
	{
		LogEvent(conn->pile, "DataTransfer from vendor \"%s\" refused: no vendor extensions here", Str(p, "vendorId"));
		res->reply = FrameCallResult(frame->id, json_pack("{s:s}", "status", "UnknownVendorId"));
	}
	else
		res->reply = FrameCallResult(frame->id, json_object());
	res->item = it;
}

/* The CALLRESULT of a transaction message, once the writer is done with it. */
char *
OcppAnswer(const Item *it)
{
	if (it->failed)
		return FrameCallError(it->msg_id, "InternalError", "the central system could not store this message");
	switch (it->kind)
	{
		case ITEM_AUTHORIZE:
			return FrameCallResult(it->msg_id, json_pack("{s:{s:s}}", "idTagInfo", "status", it->result_status));
		case ITEM_START:
			return FrameCallResult(it->msg_id, json_pack("{s:{s:s},s:i}", "idTagInfo", "status", it->result_status,
														 "transactionId", it->result_txid));
		case ITEM_STOP:
			if (it->id_tag[0])
				return FrameCallResult(it->msg_id, json_pack("{s:{s:s}}", "idTagInfo", "status", "Accepted"));
			return FrameCallResult(it->msg_id, json_object());
		default:
			return FrameCallResult(it->msg_id, json_object());
	}
}
