{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "cmf.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full resource name: the release name, plus the chart name unless the release name contains it. */}}
{{- define "cmf.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cmf.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cmf.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cmf.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "cmf.labels" -}}
{{ include "cmf.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ include "cmf.chart" . | quote }}
{{- end -}}

{{- define "cmf.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cmf.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cmf.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Fixed paths inside the container. */}}
{{- define "cmf.configDir" -}}/etc/cmf/config{{- end -}}
{{- define "cmf.keyDir" -}}/etc/cmf/encryption-key{{- end -}}
{{- define "cmf.databaseDir" -}}/etc/cmf/database{{- end -}}
{{- define "cmf.authDir" -}}/etc/cmf/auth{{- end -}}
{{- define "cmf.tlsDir" -}}/etc/cmf/tls{{- end -}}
{{- define "cmf.clientCaDir" -}}/etc/cmf/tls-client-ca{{- end -}}
{{- define "cmf.oauthDir" -}}/etc/cmf/oauth{{- end -}}

{{/* The name of the container port 8080 (and of the Service port): https with TLS, http without. */}}
{{- define "cmf.portName" -}}{{ if .Values.tls.enabled }}https{{ else }}http{{ end }}{{- end -}}

{{/* Mutual TLS: client certificates required, so the kubelet's probes cannot speak HTTP to cmf. */}}
{{- define "cmf.mtls" -}}{{ if and .Values.tls.enabled .Values.tls.clientCa.secretName }}true{{ end }}{{- end -}}

{{/*
One probe action: GET path on the probe listener (server.probePort, plain HTTP: it serves only the
probes); without one, GET on the API port over HTTP (HTTPS with TLS; the kubelet does not verify the
certificate), or, when client certificates are required (the kubelet presents none), a TCP connect.
Call with (list $ "/path").
*/}}
{{- define "cmf.probeAction" -}}
{{- $ := index . 0 -}}
{{- if $.Values.server.probePort -}}
httpGet:
  path: {{ index . 1 }}
  port: probes
{{- else if include "cmf.mtls" $ -}}
tcpSocket:
  port: {{ include "cmf.portName" $ }}
{{- else -}}
httpGet:
  path: {{ index . 1 }}
  port: {{ include "cmf.portName" $ }}
  {{- if $.Values.tls.enabled }}
  scheme: HTTPS
  {{- end }}
{{- end -}}
{{- end -}}

{{/*
A libpq conninfo value: as is when it is a plain token, otherwise single-quoted with backslash and
single quote escaped by a backslash, so a value cannot add or change another parameter.
*/}}
{{- define "cmf.pqQuote" -}}
{{- $v := toString . -}}
{{- if regexMatch "^[A-Za-z0-9._:/-]+$" $v -}}
{{- $v -}}
{{- else -}}
'{{ $v | replace "\\" "\\\\" | replace "'" "\\'" }}'
{{- end -}}
{{- end -}}

{{/* database.url: a libpq conninfo string. The password is never part of it (database.passwordFile). */}}
{{- define "cmf.databaseUrl" -}}
{{- $db := .Values.database -}}
host={{ include "cmf.pqQuote" $db.host }} port={{ int64 $db.port }} dbname={{ include "cmf.pqQuote" $db.name }} user={{ include "cmf.pqQuote" $db.user }} sslmode={{ include "cmf.pqQuote" $db.sslmode }}
{{- end -}}

{{/* The LISTEN session's conninfo: database.url's, with database.listen's host and port. */}}
{{- define "cmf.databaseListenUrl" -}}
{{- $db := .Values.database -}}
host={{ include "cmf.pqQuote" $db.listen.host }} port={{ int64 $db.listen.port }} dbname={{ include "cmf.pqQuote" $db.name }} user={{ include "cmf.pqQuote" $db.user }} sslmode={{ include "cmf.pqQuote" $db.sslmode }}
{{- end -}}

{{/*
Cross-field checks the schema cannot express with a useful message. Renders nothing; fails the
rendering with a message naming the value to set.
*/}}
{{- define "cmf.validate" -}}
{{- $key := .Values.encryption.key -}}
{{- if .Values.encryption.enabled -}}
{{- if not $key.kubernetesSecretName -}}
{{- fail "encryption.enabled is true, so encryption.key.kubernetesSecretName must name the Kubernetes Secret holding the AES key (create it with: kubectl create secret generic cmf-encryption-key --from-file=encryption-key=cmf.key)" -}}
{{- end -}}
{{- if not $key.kubernetesSecretProperty -}}
{{- fail (printf "encryption.enabled is true, so encryption.key.kubernetesSecretProperty must name the property of Secret %q that holds the AES key (with: kubectl create secret generic %s --from-file=encryption-key=cmf.key, the property is encryption-key)" $key.kubernetesSecretName $key.kubernetesSecretName) -}}
{{- end -}}
{{- if and $key.previousKubernetesSecretProperty (eq $key.previousKubernetesSecretProperty $key.kubernetesSecretProperty) -}}
{{- fail (printf "encryption.key.previousKubernetesSecretProperty must differ from encryption.key.kubernetesSecretProperty (both are %q): the new key and the previous key are two properties of the Secret" $key.kubernetesSecretProperty) -}}
{{- end -}}
{{- end -}}
{{- if not .Values.database.host -}}
{{- fail "database.host is required: set it to the PostgreSQL host name (e.g. --set database.host=postgres.example.svc)" -}}
{{- end -}}
{{- if and .Values.database.passwordSecret.name (not .Values.database.passwordSecret.key) -}}
{{- fail (printf "database.passwordSecret.name is set (%q), so database.passwordSecret.key must name the property of that Secret holding the password" .Values.database.passwordSecret.name) -}}
{{- end -}}
{{- $auth := .Values.auth -}}
{{- if and $auth.enabled (not $auth.adminTokenSecret.name) -}}
{{- fail (printf `auth.enabled is true, so auth.adminTokenSecret.name must name the Kubernetes Secret holding the bootstrap admin token (create it with: head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > admin.token; kubectl create secret generic cmf-admin-token --from-file=%s=admin.token), or set auth.enabled=false for development only` $auth.adminTokenSecret.key) -}}
{{- end -}}
{{- $tls := .Values.tls -}}
{{- if and $tls.enabled (not $tls.secretName) -}}
{{- fail "tls.enabled is true, so tls.secretName must name a kubernetes.io/tls Secret holding the server certificate and key as tls.crt and tls.key (create it with: kubectl create secret tls cmf-tls --cert=server.crt --key=server.key)" -}}
{{- end -}}
{{- if and $tls.clientCa.secretName (not $tls.enabled) -}}
{{- fail (printf "tls.clientCa.secretName is set (%q), but client certificates need TLS: set tls.enabled=true and tls.secretName, or leave tls.clientCa.secretName empty" $tls.clientCa.secretName) -}}
{{- end -}}
{{- if and $auth.mtls.principal (not (include "cmf.mtls" .)) -}}
{{- fail "auth.mtls.principal is true, but there are no client certificates without mutual TLS: set tls.enabled=true, tls.secretName and tls.clientCa.secretName, or auth.mtls.principal=false" -}}
{{- end -}}
{{- if and $auth.mtls.principal (not $auth.enabled) -}}
{{- fail "auth.mtls.principal is true but auth.enabled is false: with authentication off there are no principals" -}}
{{- end -}}
{{- $oauth := $auth.oauth -}}
{{- if $oauth.enabled -}}
{{- if not $auth.enabled -}}
{{- fail "auth.oauth.enabled is true but auth.enabled is false: with authentication off there are no principals" -}}
{{- end -}}
{{- if not $oauth.issuer -}}
{{- fail "auth.oauth.enabled is true, so auth.oauth.issuer must be your identity provider's issuer (the iss of its tokens, e.g. https://keycloak.example.com/realms/cmf)" -}}
{{- end -}}
{{- if not $oauth.audience -}}
{{- fail "auth.oauth.enabled is true, so auth.oauth.audience must be a value the tokens' aud contains (the client id or API audience at your provider)" -}}
{{- end -}}
{{- if eq (empty $oauth.jwks.secretName) (empty $oauth.jwks.configMapName) -}}
{{- fail (printf "auth.oauth.enabled is true, so exactly one of auth.oauth.jwks.secretName and auth.oauth.jwks.configMapName must name the Secret or ConfigMap holding your provider's JWKS under %q (e.g. curl -sS <jwks_uri> > jwks.json; kubectl create configmap cmf-oidc-jwks --from-file=%s=jwks.json)" $oauth.jwks.key $oauth.jwks.key) -}}
{{- end -}}
{{- end -}}
{{- if eq (int64 .Values.server.probePort) 8080 -}}
{{- fail "server.probePort is 8080, the API's own port: choose another port for the probe listener (8081 by default), or 0 to probe the API port" -}}
{{- end -}}
{{- $sm := .Values.metrics.serviceMonitor -}}
{{- if and $sm.enabled (not .Values.metrics.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled is true but metrics.enabled is false: /metrics would answer 404 to every scrape; set metrics.enabled=true or metrics.serviceMonitor.enabled=false" -}}
{{- end -}}
{{- if and $sm.enabled $auth.enabled (not $sm.tokenSecret.name) -}}
{{- fail (printf "metrics.serviceMonitor.enabled is true and auth.enabled is true, so metrics.serviceMonitor.tokenSecret.name must name the Kubernetes Secret holding a metrics-reader token for Prometheus (create the token with POST /cmf/api/v1/tokens and spec.role metrics-reader, then: kubectl create secret generic cmf-metrics-token --from-file=%s=metrics.token)" $sm.tokenSecret.key) -}}
{{- end -}}
{{- $managed := dict
  "CMF_LISTEN" "(fixed by the chart: 0.0.0.0:8080)"
  "CMF_SERVER_THREADS" "server.threads"
  "CMF_SERVER_MAX_BODY_BYTES" "server.maxBodyBytes"
  "CMF_SERVER_MAX_CONNECTIONS" "server.maxConnections"
  "CMF_SERVER_MAX_WATCHERS" "server.maxWatchers"
  "CMF_SERVER_MAX_HEADER_BYTES" "server.maxHeaderBytes"
  "CMF_SERVER_TLS_CERT_FILE" "tls.enabled and tls.secretName"
  "CMF_SERVER_TLS_KEY_FILE" "tls.enabled and tls.secretName"
  "CMF_SERVER_TLS_CLIENT_CA_FILE" "tls.clientCa.secretName and tls.clientCa.key"
  "CMF_AUTH_ENABLED" "auth.enabled"
  "CMF_AUTH_ADMIN_TOKEN_FILE" "auth.adminTokenSecret.name and auth.adminTokenSecret.key"
  "CMF_AUTH_MTLS_PRINCIPAL" "auth.mtls.principal"
  "CMF_AUTH_MTLS_PRINCIPAL_MAPPING_RULES" "auth.mtls.principalMappingRules"
  "CMF_AUTH_OAUTH_ENABLED" "auth.oauth.enabled"
  "CMF_AUTH_OAUTH_JWKS_FILE" "auth.oauth.jwks"
  "CMF_AUTH_OAUTH_ISSUER" "auth.oauth.issuer"
  "CMF_AUTH_OAUTH_AUDIENCE" "auth.oauth.audience"
  "CMF_AUTH_OAUTH_PRINCIPAL_CLAIM" "auth.oauth.principalClaim"
  "CMF_AUTH_OAUTH_CLOCK_SKEW_SECONDS" "auth.oauth.clockSkewSeconds"
  "CMF_DATABASE_URL" "database.host, database.port, database.name, database.user, database.sslmode"
  "CMF_DATABASE_PASSWORD_FILE" "database.passwordSecret"
  "CMF_DATABASE_STARTUP_TIMEOUT_SECONDS" "database.startupTimeoutSeconds"
  "CMF_DATABASE_REQUEST_TIMEOUT_SECONDS" "database.requestTimeoutSeconds"
  "CMF_DATABASE_LISTEN_URL" "database.listen.host and database.listen.port"
  "CMF_SERVER_PROBE_LISTEN" "server.probePort"
  "CMF_ENCRYPTION_KEY_ID" "encryption.key.id"
  "CMF_AUDIT_QUEUE_CAPACITY" "audit.queueCapacity"
  "CMF_AUDIT_RETENTION_DAYS" "audit.retentionDays"
  "CMF_CACHE_ENABLED" "cache.enabled"
  "CMF_SECRETS_MAX_VERSIONS" "secrets.maxVersions"
  "CMF_SECRETS_REQUIRE_IF_MATCH" "secrets.requireIfMatch"
  "CMF_ENCRYPTION_ENABLED" "encryption.enabled"
  "CMF_ENCRYPTION_KEY_FILE" "encryption.key.kubernetesSecretName and encryption.key.kubernetesSecretProperty"
  "CMF_ENCRYPTION_KEY_RELOAD_INTERVAL_SECONDS" "encryption.key.reloadIntervalSeconds"
  "CMF_ENCRYPTION_KEY_PREVIOUS_FILE" "encryption.key.previousKubernetesSecretProperty"
  "CMF_LOG_LEVEL" "log.level"
  "CMF_METRICS_ENABLED" "metrics.enabled" -}}
{{- range $i, $e := .Values.extraEnv -}}
{{- if hasKey $managed $e.name -}}
{{- fail (printf "extraEnv[%d]: %s would override the configuration this chart renders; set %s instead" $i $e.name (get $managed $e.name)) -}}
{{- end -}}
{{- if and $e.valueFrom (hasKey $e.valueFrom "secretKeyRef") -}}
{{- fail (printf "extraEnv[%d] (%s): values from a Secret (valueFrom.secretKeyRef) are refused: no secret is passed to cmf by environment variable; mount it as a file instead" $i $e.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
