/* cmf csfle: check a client-side field-level encryption (CSFLE) declaration and build its Schema Registry ruleSet. */
#ifndef CMF_CSFLE_H
#define CMF_CSFLE_H

#include <jansson.h>
#include <stddef.h>

/*
 * The `spec` of a CsfleConfig resource (apiVersion cmf.confluent.io/v1), the contract the API accepts.
 * Unknown keys anywhere are problems (a typo must not silently drop a protection).
 *
 *   {
 *     "kms": {                                  required
 *       "type": "aws-kms",                      required: aws-kms | azure-kms | gcp-kms | hcvault | local-kms
 *       "keyId": "arn:aws:kms:...:key/...",     required, in the form its KMS expects:
 *                                                 aws-kms   arn:<aws|aws-cn|aws-us-gov>:kms:<region>:<12-digit account>:key/<id>
 *                                                           or ...:alias/<name>
 *                                                 azure-kms https://<vault>.vault.azure.net/keys/<name>[/<version>]
 *                                                           (also .vault.azure.cn, .vault.usgovcloudapi.net,
 *                                                           .managedhsm.azure.net)
 *                                                 gcp-kms   projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>
 *                                                 hcvault   http(s)://<host>[:<port>]/<mount>/keys/<name>
 *                                                           (the transit engine: usually /transit/keys/<name>)
 *                                                 local-kms any non-empty string
 *       "credentialsSecretId": "kms-creds"      optional: the secret id resolved per environment through the
 *                                               secret mappings; absent = the clients use ambient credentials
 *                                               or a KEK shared with the DEK Registry
 *     },
 *     "kek": {                                  required
 *       "name": "pii-kek",                      required, ^[A-Za-z_][A-Za-z0-9_-]*$, at most 256 characters
 *       "shared": false                         optional bool (default false): whether the KEK is registered
 *                                               as shared with the DEK Registry; not a rule parameter
 *     },
 *     "dek": {                                  optional
 *       "algorithm": "AES256_GCM",              optional: AES128_GCM | AES256_GCM (default) | AES256_SIV
 *       "expiryDays": 90                        optional JSON integer >= 0 (0 = no rotation, as the clients read it)
 *     },
 *     "preserveSourceFields": false,            optional bool (default false)
 *     "latestCacheTtlSec": 300,                 optional integer >= -1; unset or -1 is a warning
 *     "rules": [                                required, non-empty, in execution order
 *       {
 *         "name": "encryptPII",                 required, unique, 1 to 256 characters
 *         "kind": "TRANSFORM",                  optional, only TRANSFORM
 *         "type": "ENCRYPT",                    optional: ENCRYPT (default, a domain rule: non-empty "tags")
 *                                               or ENCRYPT_PAYLOAD (an encoding rule: no "tags")
 *         "tags": ["PII"],                      strings, non-empty, no duplicates
 *         "mode": "WRITEREAD",                  optional: WRITE | READ | WRITEREAD (default); READ is a
 *                                               warning (writes are not encrypted)
 *         "onSuccess": "NONE",                  optional: ERROR | NONE | DLQ, or "X,Y" (no spaces) with WRITEREAD
 *         "onFailure": "ERROR,NONE",            optional, same form; absent = ERROR (the clients' default)
 *         "disabled": false                     optional bool
 *       }
 *     ],
 *     "schemas": [                              optional: the schemas whose tagged fields the rules protect
 *       { "subject": "orders-value", "schemaType": "AVRO" | "JSON", "schema": "<the schema text>" }
 *     ]
 *   }
 *
 * Messages: every function below appends one new JSON string per finding to the arrays it is given
 * (`problems` refuse the declaration, `warnings` do not); arrays are borrowed and must be JSON arrays.
 * Messages name fields by their path (spec.rules[1].onFailure) and quote names and ids, bounded and
 * made valid UTF-8; they never quote a secret value. Input JSON is borrowed and may be any JSON: a
 * wrong type is a problem, never a crash.
 */

/* The DEK Registry retains at most 10,000 DEKs (seed 002); the expiry warning counts against it. */
#define CMF_CSFLE_DEK_LIMIT 10000

/*
 * Check a whole spec: fields, KMS, KEK, DEK, rules, and, when `schemas` are given, each schema (via
 * cmf_csfle_check_schema, messages prefixed with the schema's path and subject) and the tags between
 * rules and fields. All problems are reported, not the first only.
 *
 * Warnings: a rule whose write-side onFailure is NONE (plaintext may be written) or DLQ (seed 002: no
 * DLQ with CSFLE); a disabled rule; a rule whose mode does not run on WRITE (READ: producers write its
 * tagged fields, or payloads, in plaintext; it is then treated as a disabled rule); a rule that fails strictly (write-side ERROR, the default) placed
 * after a lenient one (NONE or DLQ) — seed 002 orders the most sensitive, strict rules first; an expiry
 * that would exhaust the DEK limit within a year; latestCacheTtlSec unset or -1 (rule changes ignored
 * until restart); a rule tag on no field of the schemas, a field tag used by no enabled rule that runs
 * on WRITE. The migration rule modes Confluent documents (UPGRADE, DOWNGRADE, UPDOWN) are problems.
 *
 * DEK expiry arithmetic (our reading of seed 002): a client creates one DEK per (KEK, subject,
 * algorithm) and a new version of it every expiryDays, and old versions are retained to decrypt old
 * records. A year therefore adds subjects x ceil(365 / expiryDays) DEKs, where subjects is the number
 * of distinct subjects in `schemas` (at least 1; other configurations sharing the registry only add to
 * it, so this is a lower bound). When that reaches CMF_CSFLE_DEK_LIMIT it is a warning. With one
 * subject it never fires (365 < 10,000); it does from 28 subjects at 1 day, 274 subjects at 10 days.
 */
void cmf_csfle_check(json_t *spec, json_t *problems, json_t *warnings);

/*
 * The fields of a spec that name the keys records were encrypted under: spec.kek.name, spec.kms.keyId,
 * spec.kms.type and spec.dek.algorithm (absent: AES256_GCM, as the clients read it). Readers use the
 * latest ruleSet, so changing one of them on a CsfleConfig in use leaves records written before
 * unreadable. Returns how many differ between `old_spec` and `new_spec` (borrowed, any JSON) and writes
 * their paths, ", "-separated, into `buf` (size `len`, cut when too small; "" when none).
 */
size_t cmf_csfle_identity_changes(json_t *old_spec, json_t *new_spec, char *buf, size_t len);

/*
 * Check one schema's tagged fields. `schema_type` "AVRO" (Avro JSON: records, nested records,
 * arrays, maps, unions, named-type references; tags in a field's "confluent:tags") or "JSON" (JSON
 * Schema: properties, nested objects, items, additionalProperties, oneOf/anyOf/allOf, local $ref
 * into definitions/$defs; tags in a property's "confluent:tags"). A tagged field whose type is not
 * string or bytes (Avro) / string (JSON Schema) — after looking through nullable unions
 * (["null","string"], "type": ["string","null"], oneOf with {"type":"null"}) and into array items and
 * map values, which the clients encrypt one by one — is a problem naming the field path and its type.
 * Only fields carrying a tag in `rule_tags` (array of strings, borrowed) are type-checked; NULL checks
 * every tagged field. Every tag seen is appended once to `tags_found` (array, borrowed; may be NULL).
 * `warnings` is reserved for findings that do not refuse (may be NULL).
 */
void cmf_csfle_check_schema(const char *schema_type, const char *schema_text, json_t *rule_tags, json_t *problems,
			    json_t *warnings, json_t *tags_found);

/*
 * Check the data of the secret mapped as a KMS's credentials (object of string values, borrowed;
 * keys are the bare rule-executor parameter names, rendered as rule.executors._default_.param.<key>).
 * It must hold one complete set for `kms_type` and nothing else:
 *   aws-kms   access.key.id + secret.access.key, or profile; either optionally with role.arn (the role
 *             assumed with them), or role.arn alone (assumed with the ambient credentials);
 *             role.session.name and role.external.id only with role.arn (Confluent's aws-driver)
 *   azure-kms tenant.id + client.id + client.secret
 *   gcp-kms   client.id + client.email + private.key.id + private.key (+ optional account.type)
 *   hcvault   token.id (+ optional namespace), or approle.role.id + approle.secret.id (+ optional namespace)
 *   local-kms secret
 * A partial set is a problem (the clients would silently fall back to ambient credentials), so are two
 * alternatives at once (access keys and profile; token.id and approle.*), so is an
 * unknown key (typos such as "access.key,id" exist), an empty or non-string value. Messages name keys,
 * never values.
 */
void cmf_csfle_check_credentials(const char *kms_type, json_t *secret_data, json_t *problems);

/*
 * Check the resolved client config of a database with CSFLE: `kafka` and `sr` property objects
 * (borrowed; either may be NULL). A property is matched by its name or by a dotted suffix
 * (value.converter.auto.register.schemas counts as auto.register.schemas). Booleans are read as
 * Java's Boolean.parseBoolean does (only "true", any case, is true; JSON true also counts).
 * Problems: auto.register.schemas true; use.latest.version present and not true (absent is not a
 * problem: cmf's rendering sets it, and the check also holds after rendering); no non-empty
 * schema.registry.url in either map; rule.executors.<x>.disabled true; rule.executors.<x>.onFailure
 * containing NONE; rule.service.loader.enable present and not true; any of these booleans given as a
 * string with spaces around it ("true "), which Kafka's configuration trims and parseBoolean does not.
 * Warnings: errors.deadletterqueue.topic.name, reporter.<x>.topic.name, any dlq.<x> property (DLQ and
 * reporter topics are not encrypted: seeds 000, 001, 002).
 */
void cmf_csfle_check_resolved(json_t *kafka, json_t *sr, json_t *problems, json_t *warnings);

/*
 * The same for the public connectionConfigs alone (when a database is written): every finding but a
 * missing schema.registry.url, which a connection secret may still supply.
 */
void cmf_csfle_check_public(json_t *kafka, json_t *sr, json_t *problems, json_t *warnings);

/*
 * 1 when `key` is a rule executor parameter, "rule.executors.<x>.param.<name>" (at its start or after
 * a '.'): KMS credentials, which belong in the CsfleConfig's credentials secret, never in a
 * connectionConfig.
 */
int cmf_csfle_credential_key(const char *key);

/*
 * Apply CsfleConfig `config` (its checked `spec`) to a resolved client configuration: the `kafka` and
 * `sr` property maps (objects of strings, modified) of a database naming it, and `creds` (the data of
 * the secret mapped to spec.kms.credentialsSecretId, borrowed; ignored when the spec names none).
 * Problems (nothing is changed when there is one): everything cmf_csfle_check_resolved finds; a rule
 * executor parameter in kafka or sr (credentials come from one place); a latest.cache.ttl.sec other
 * than spec.latestCacheTtlSec; cmf_csfle_check_credentials's findings. Warnings: check_resolved's.
 * Otherwise `sr` gains the serializer settings auto.register.schemas=false, use.latest.version=true,
 * latest.cache.ttl.sec (when the spec sets it), and rule.executors._default_.param.<key> for every
 * credential (the same keys leave `kafka`, so a merged file holds each once).
 * Returns 0 (problems or applied), or -1 when memory ran out while applying: the maps are then
 * incomplete and must not be served.
 */
int cmf_csfle_apply(json_t *spec, const char *config, json_t *creds, json_t *kafka, json_t *sr, json_t *problems,
		    json_t *warnings);

/*
 * The checks of cmf_csfle_apply that a database's public configuration and its catalog's can fail
 * on their own, run when the database is written: check_public's findings (no URL requirement: a
 * secret may supply it), a rule executor parameter, a latest.cache.ttl.sec other than the spec's.
 */
void cmf_csfle_check_database(json_t *spec, const char *config, json_t *kafka, json_t *sr, json_t *problems,
			      json_t *warnings);

/*
 * The Schema Registry ruleSet of a spec, as seed 002 shows it, ready to register:
 *   {"domainRules":[...ENCRYPT rules in declared order...],
 *    "encodingRules":[...ENCRYPT_PAYLOAD rules in declared order...]}
 * each rule {"name","kind":"TRANSFORM","mode","type","tags" (domain rules only),"params":{
 * "encrypt.kek.name","encrypt.kms.key.id","encrypt.kms.type","encrypt.dek.algorithm" (default
 * AES256_GCM),"encrypt.dek.expiry.days" (only when set),"preserve.source.fields" ("true"/"false")},
 * "onSuccess"/"onFailure" (only when set),"disabled"}; param values are strings, as Schema Registry
 * stores them; mode defaults to WRITEREAD. Returns a new reference the caller decref's, or NULL when
 * the spec has problems (cmf_csfle_check names them) or memory ran out.
 */
json_t *cmf_csfle_ruleset(json_t *spec);

#endif
