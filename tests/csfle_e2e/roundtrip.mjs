// CSFLE round trip with Confluent's JavaScript client (@confluentinc/schemaregistry), driven by a
// client configuration and a Schema Registry ruleSet rendered by cmf.
//
// Run:
//   DIR=$(tests/csfle-npm.sh | tail -n 1)
//   CSFLE_NPM_DIR="$DIR" node tests/csfle_e2e/roundtrip.mjs < input.json
//
// Module resolution (the package is CommonJS; ESM `import` ignores NODE_PATH, so it is loaded with
// createRequire): if CSFLE_NPM_DIR is set, only "$CSFLE_NPM_DIR/node_modules" is used. Otherwise the
// normal CommonJS lookup from this file's directory, then NODE_PATH (which `require` does honour),
// then <repo>/.cache/csfle-npm/node_modules (where tests/csfle-npm.sh installs it).
//
// stdin: {"properties": {flat Java-style client properties}, "ruleSet": {...}, "subject": "...",
//         "schema": "<Avro schema JSON text>", "record": {...}, "taggedField": "...", "topic": "..."}
// stdout: one JSON object:
//   wireHex, plaintextOnWire, otherFieldOnWire, decoded, decodedWithoutParams, withoutParamsError,
//   plus: otherField (the untagged string field checked), withoutParamsRuleError (the rule failure a
//   "NONE" read action swallows, or null), packageVersion.
// exit: 0 ran (whatever the booleans); 2 malformed input; 3 the positive path (serialize, or
//   deserialize with the parameters) failed: message on stderr; 1 anything else (e.g. module missing).
//
// Java property -> JS client configuration (nothing else is read; other keys are ignored):
//   schema.registry.url                    -> ClientConfig.baseURLs (comma-separated; must be mock://)
//   latest.cache.ttl.sec                   -> ClientConfig.cacheLatestTtlSecs and SerdeConfig.cacheLatestTtlSecs
//                                             (only when > 0; Java's -1 means "never expire")
//   auto.register.schemas (Java default true)  -> SerializerConfig.autoRegisterSchemas
//   use.latest.version    (Java default false) -> SerializerConfig/DeserializerConfig.useLatestVersion
//   rule.executors._default_.param.<k>     -> SerdeConfig.ruleConfig[<k>] (handed to every rule executor;
//                                             the local-kms driver reads ruleConfig.secret)
// The subject comes from TopicNameStrategy (Java's default) when it equals "<topic>-value", else it is
// fixed to the given subject.
//
// Registries: one in-memory MockClient holds the schema (registered with the ruleSet) for every
// serializer/deserializer. One MockDekRegistryClient plays the DEK registry *server*; each serde gets
// its own client view of it (like separate producer/consumer processes) that caches its own copies of
// KEKs/DEKs, so a DEK's decrypted key material never leaks from the writer to a reader through the
// mock's shared objects: every reader must unwrap the DEK with its own KMS configuration. The global
// KMS client cache of the package is cleared before each serde runs, and LOCAL_SECRET (the env
// fallback of LocalKmsDriver) is removed, so the secret can only come from the properties.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PKG = '@confluentinc/schemaregistry';
const DEFAULT_PARAM_PREFIX = 'rule.executors._default_.param.';

class InputError extends Error {}

function fail(code, msg) {
	process.stderr.write(`roundtrip.mjs: ${msg}\n`);
	process.exit(code);
}

function loadPackage() {
	const here = path.dirname(fileURLToPath(import.meta.url));
	const bases = [];
	if (process.env.CSFLE_NPM_DIR) {
		bases.push(path.join(path.resolve(process.env.CSFLE_NPM_DIR), 'noop.js'));
	} else {
		bases.push(fileURLToPath(import.meta.url));
		bases.push(path.join(here, '..', '..', '.cache', 'csfle-npm', 'noop.js'));
	}
	const errors = [];
	for (const base of bases) {
		const req = createRequire(base);
		try {
			const sr = req(PKG);
			const version = req(`${PKG}/package.json`).version;
			// Not re-exported by the package index.
			const { MockDekRegistryClient } = req(`${PKG}/dist/rules/encryption/dekregistry/mock-dekregistry-client.js`);
			return { sr: { ...sr, MockDekRegistryClient }, version };
		} catch (e) {
			errors.push(`${base}: ${e.code ?? e.message}`);
		}
	}
	fail(1, `cannot load ${PKG} (run tests/csfle-npm.sh and set CSFLE_NPM_DIR): ${errors.join('; ')}`);
}

async function readStdin() {
	const chunks = [];
	for await (const c of process.stdin) chunks.push(c);
	return Buffer.concat(chunks).toString('utf8');
}

function parseBool(props, key, dflt) {
	const v = props[key];
	if (v == null) return dflt;
	const s = String(v).trim().toLowerCase();
	if (s === 'true') return true;
	if (s === 'false') return false;
	throw new InputError(`property ${key}: not a boolean: ${JSON.stringify(v)}`);
}

// The mapping under test: Java client properties -> JS ClientConfig + serde configs.
function mapProperties(props) {
	const url = props['schema.registry.url'];
	if (typeof url !== 'string' || url.trim() === '') throw new InputError('property schema.registry.url is missing');
	const baseURLs = url.split(',').map((s) => s.trim()).filter(Boolean);
	if (!baseURLs.every((u) => u.startsWith('mock://')))
		throw new InputError(`schema.registry.url must be mock://... for this harness, got ${url}`);
	const clientConfig = { baseURLs };
	let ttl;
	if (props['latest.cache.ttl.sec'] != null) {
		const s = String(props['latest.cache.ttl.sec']).trim();
		if (!/^-?\d+$/.test(s)) throw new InputError(`property latest.cache.ttl.sec: not an integer: ${s}`);
		if (Number(s) > 0) ttl = Number(s);
	}
	if (ttl !== undefined) clientConfig.cacheLatestTtlSecs = ttl;
	const ruleConfig = {};
	for (const [k, v] of Object.entries(props)) {
		if (k.startsWith(DEFAULT_PARAM_PREFIX) && k.length > DEFAULT_PARAM_PREFIX.length) {
			ruleConfig[k.slice(DEFAULT_PARAM_PREFIX.length)] = String(v);
		}
	}
	const useLatestVersion = parseBool(props, 'use.latest.version', false);
	const common = { useLatestVersion, ruleConfig, ...(ttl !== undefined && { cacheLatestTtlSecs: ttl }) };
	return {
		clientConfig,
		serializerConfig: { ...common, autoRegisterSchemas: parseBool(props, 'auto.register.schemas', true) },
		deserializerConfig: { ...common },
	};
}

function validateInput(inp) {
	if (inp == null || typeof inp !== 'object' || Array.isArray(inp)) throw new InputError('input is not a JSON object');
	const { properties, ruleSet, subject, schema, record, taggedField, topic } = inp;
	if (properties == null || typeof properties !== 'object' || Array.isArray(properties))
		throw new InputError('"properties" must be an object');
	if (ruleSet == null || typeof ruleSet !== 'object' || Array.isArray(ruleSet))
		throw new InputError('"ruleSet" must be an object');
	for (const [k, v] of Object.entries({ subject, taggedField, topic }))
		if (typeof v !== 'string' || v === '') throw new InputError(`"${k}" must be a non-empty string`);
	if (typeof schema !== 'string') throw new InputError('"schema" must be the Avro schema as JSON text');
	let parsed;
	try {
		parsed = JSON.parse(schema);
	} catch (e) {
		throw new InputError(`"schema" is not JSON: ${e.message}`);
	}
	if (parsed?.type !== 'record' || !Array.isArray(parsed.fields)) throw new InputError('"schema" must be an Avro record');
	if (record == null || typeof record !== 'object' || Array.isArray(record)) throw new InputError('"record" must be an object');
	const plain = record[taggedField];
	if (typeof plain !== 'string' || plain === '')
		throw new InputError(`record.${taggedField} (the tagged field) must be a non-empty string`);
	if (!parsed.fields.some((f) => f.name === taggedField)) throw new InputError(`schema has no field ${taggedField}`);
	return parsed;
}

// A client's view of the shared mock DEK registry: forwards to the "server" and, like
// DekRegistryClient, caches its own copies (so key material it unwraps stays its own).
class DekRegistryView {
	constructor(server, clientConfig) {
		this.server = server;
		this.clientConfig = clientConfig;
		this.keks = new Map();
		this.deks = new Map();
	}
	static copy(o) {
		if (o == null) return o;
		const { keyMaterial, keyMaterialBytes, encryptedKeyMaterialBytes, ...rest } = o; // eslint-disable-line no-unused-vars
		return rest;
	}
	config() {
		return this.clientConfig;
	}
	async registerKek(name, kmsType, kmsKeyId, shared, kmsProps, doc) {
		const kek = DekRegistryView.copy(await this.server.registerKek(name, kmsType, kmsKeyId, shared, kmsProps, doc));
		this.keks.set(JSON.stringify([name, false]), kek);
		return kek;
	}
	async getKek(name, deleted = false) {
		const key = JSON.stringify([name, deleted]);
		if (!this.keks.has(key)) this.keks.set(key, DekRegistryView.copy(await this.server.getKek(name, deleted)));
		return this.keks.get(key);
	}
	async registerDek(kekName, subject, algorithm, version = 1, encryptedKeyMaterial) {
		const dek = DekRegistryView.copy(await this.server.registerDek(kekName, subject, algorithm, version, encryptedKeyMaterial));
		this.deks.set(JSON.stringify([kekName, subject, algorithm, version, false]), dek);
		return dek;
	}
	async getDek(kekName, subject, algorithm, version = 1, deleted = false) {
		const key = JSON.stringify([kekName, subject, algorithm, version, deleted]);
		if (!this.deks.has(key))
			this.deks.set(key, DekRegistryView.copy(await this.server.getDek(kekName, subject, algorithm, version, deleted)));
		return this.deks.get(key);
	}
	// These only decode/annotate the DEK object handed in (one of this view's copies).
	getDekEncryptedKeyMaterialBytes(dek) {
		return this.server.getDekEncryptedKeyMaterialBytes(dek);
	}
	getDekKeyMaterialBytes(dek) {
		return this.server.getDekKeyMaterialBytes(dek);
	}
	setDekKeyMaterial(dek, bytes) {
		return this.server.setDekKeyMaterial(dek, bytes);
	}
	async close() {}
}

function errMessage(e) {
	return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

async function main() {
	delete process.env.LOCAL_SECRET; // LocalKmsDriver's fallback when ruleConfig has no "secret"
	let input;
	try {
		input = JSON.parse(await readStdin());
	} catch (e) {
		fail(2, `stdin is not JSON: ${e.message}`);
	}
	let schemaObj, withCfg, withoutCfg;
	try {
		schemaObj = validateInput(input);
		withCfg = mapProperties(input.properties);
		const stripped = Object.fromEntries(
			Object.entries(input.properties).filter(([k]) => !k.startsWith('rule.executors.')),
		);
		withoutCfg = mapProperties(stripped);
	} catch (e) {
		if (e instanceof InputError) fail(2, e.message);
		throw e;
	}
	const { sr, version } = loadPackage();
	const {
		MockClient, MockDekRegistryClient, AvroSerializer, AvroDeserializer, SerdeType, RuleRegistry,
		FieldEncryptionExecutor, LocalKmsDriver, clearKmsClients, SubjectNameStrategyType,
	} = sr;
	const missing = Object.entries({ MockClient, MockDekRegistryClient, AvroSerializer, AvroDeserializer,
		RuleRegistry, FieldEncryptionExecutor, LocalKmsDriver, clearKmsClients, SerdeType, SubjectNameStrategyType })
		.filter(([, v]) => v == null).map(([k]) => k);
	if (missing.length) fail(1, `${PKG} ${version} lacks: ${missing.join(', ')}`);

	LocalKmsDriver.register();

	const { topic, subject, taggedField } = input;
	const subjectOpts = subject === `${topic}-value`
		? { subjectNameStrategyType: SubjectNameStrategyType.TOPIC }
		: { subjectNameStrategy: () => subject };

	// One schema registry, one DEK registry "server".
	const registry = new MockClient(withCfg.clientConfig);
	const dekServer = new MockDekRegistryClient(withCfg.clientConfig);
	try {
		await registry.register(subject, { schemaType: 'AVRO', schema: input.schema, ruleSet: input.ruleSet });
	} catch (e) {
		fail(2, `registering the schema under ${subject} failed: ${errMessage(e)}`);
	}

	const ruleErrors = [];
	function rules() {
		const rr = new RuleRegistry();
		const fe = new FieldEncryptionExecutor();
		// Pre-set the DEK client so configure() uses our view of the shared DEK registry instead of
		// creating a private mock (it checks that the view's config deep-equals the client's).
		fe.executor.client = new DekRegistryView(dekServer, registry.config());
		const orig = fe.transform.bind(fe);
		fe.transform = async (ctx, msg) => {
			try {
				return await orig(ctx, msg);
			} catch (e) {
				ruleErrors.push(errMessage(e));
				throw e;
			}
		};
		rr.registerExecutor(fe);
		return rr;
	}

	// Write with the rendered properties.
	clearKmsClients();
	let wire;
	try {
		const ser = new AvroSerializer(registry, SerdeType.VALUE, { ...withCfg.serializerConfig, ...subjectOpts }, rules());
		wire = await ser.serialize(topic, structuredClone(input.record));
	} catch (e) {
		fail(3, `serialize failed: ${errMessage(e)}`);
	}

	// Read with the same properties.
	clearKmsClients();
	let decoded;
	try {
		const de = new AvroDeserializer(registry, SerdeType.VALUE, { ...withCfg.deserializerConfig, ...subjectOpts }, rules());
		decoded = await de.deserialize(topic, wire);
	} catch (e) {
		fail(3, `deserialize (with the rule executor parameters) failed: ${errMessage(e)}`);
	}

	// Read without any rule.executors.* property.
	clearKmsClients();
	ruleErrors.length = 0;
	let decodedWithoutParams = null;
	let withoutParamsError = null;
	try {
		const de = new AvroDeserializer(registry, SerdeType.VALUE, { ...withoutCfg.deserializerConfig, ...subjectOpts }, rules());
		decodedWithoutParams = (await de.deserialize(topic, wire)) ?? null;
	} catch (e) {
		withoutParamsError = errMessage(e);
	}

	const plain = Buffer.from(input.record[taggedField], 'utf8');
	const tagged = new Set([taggedField]);
	const other = schemaObj.fields.find((f) => !tagged.has(f.name) && f['confluent:tags'] == null
		&& (f.type === 'string' || f.type?.type === 'string')
		&& typeof input.record[f.name] === 'string' && input.record[f.name] !== '');
	const out = {
		wireHex: wire.toString('hex'),
		plaintextOnWire: wire.includes(plain),
		otherFieldOnWire: other ? wire.includes(Buffer.from(input.record[other.name], 'utf8')) : null,
		decoded,
		decodedWithoutParams,
		withoutParamsError,
		otherField: other ? other.name : null,
		withoutParamsRuleError: ruleErrors.length ? ruleErrors.join('; ') : null,
		packageVersion: version,
	};
	process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => fail(1, `unexpected failure: ${e?.stack ?? e}`));
