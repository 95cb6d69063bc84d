/* cmf render: resolved client configurations as JSON, a Java .properties file, or Flink SQL options. */
#ifndef CMF_RENDER_H
#define CMF_RENDER_H

#include <jansson.h>
#include <stddef.h>

/* A new object: `config` (public connectionConfig) with `secret`'s data over it (the secret wins). */
json_t *cmf_render_merge(json_t *config, json_t *secret);

/*
 * The outputs below are malloc'd, NUL-terminated, and hold secret values: callers wipe them
 * (OPENSSL_cleanse) before freeing. On failure they return NULL with a client message in `err`.
 */

/* {"kafka":{...},"schemaRegistry":{...}}, keys sorted, and "warnings":[...] when `warnings` (may be NULL) has any. */
char *cmf_render_json(json_t *kafka, json_t *sr, json_t *warnings, char *err, size_t errlen);

/*
 * One Java .properties file a Kafka client with Confluent's serializers loads as is: `comment` (may
 * be NULL; each of its lines becomes a "# " line, bytes outside printable ASCII '?'), then every Kafka and Schema Registry property, sorted, escaped exactly as
 * java.util.Properties.store does (keys: space = : # ! \ and controls; values the same but only a
 * leading space; every character outside 0x20..0x7e as \uXXXX, UTF-16 surrogate pairs above U+FFFF).
 * A key present in both maps with different values is refused (one file cannot hold both).
 */
char *cmf_render_properties(json_t *kafka, json_t *sr, const char *comment, char *err, size_t errlen);

/*
 * The WITH (...) options for Flink's Kafka connector: 'properties.<key>' for every Kafka property,
 * and the avro-confluent format's Schema Registry options for 'value.format' = 'avro-confluent'
 * ('value.avro-confluent.url', '...basic-auth.credentials-source', '...basic-auth.user-info',
 * '...bearer-auth.credentials-source', '...bearer-auth.token', '...ssl.{keystore,truststore}.
 * {location,password}'). A Schema Registry property with no such option is refused, naming it.
 * SQL string literals double their single quotes.
 */
char *cmf_render_flink_sql(json_t *kafka, json_t *sr, char *err, size_t errlen);

/*
 * Kafka Connect connector properties (a .properties file, as cmf_render_properties): every Schema
 * Registry property `sr` holds (with the CSFLE serializer settings and rule executor parameters
 * cmf_csfle_apply added) prefixed with "key.converter." and "value.converter.", the rule executor
 * parameters also unprefixed as seed 001 lists them, and csfle.enabled=true when `csfle`. Kafka
 * connection properties are not part of it: a connector's Kafka connection is its worker's.
 */
char *cmf_render_connect(json_t *sr, int csfle, const char *comment, char *err, size_t errlen);

/* Java .properties escaping of one key (is_key 1) or value (0) into a new string; NULL when out of memory. */
char *cmf_render_properties_escape(const char *s, int is_key);

#endif
