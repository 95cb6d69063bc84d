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
{{- end -}}
{{- if not .Values.database.host -}}
{{- fail "database.host is required: set it to the PostgreSQL host name (e.g. --set database.host=postgres.example.svc)" -}}
{{- end -}}
{{- if and .Values.database.passwordSecret.name (not .Values.database.passwordSecret.key) -}}
{{- fail (printf "database.passwordSecret.name is set (%q), so database.passwordSecret.key must name the property of that Secret holding the password" .Values.database.passwordSecret.name) -}}
{{- end -}}
{{- $managed := dict
  "CMF_LISTEN" "(fixed by the chart: 0.0.0.0:8080)"
  "CMF_SERVER_THREADS" "server.threads"
  "CMF_SERVER_MAX_BODY_BYTES" "server.maxBodyBytes"
  "CMF_DATABASE_URL" "database.host, database.port, database.name, database.user, database.sslmode"
  "CMF_DATABASE_PASSWORD_FILE" "database.passwordSecret"
  "CMF_DATABASE_STARTUP_TIMEOUT_SECONDS" "database.startupTimeoutSeconds"
  "CMF_ENCRYPTION_ENABLED" "encryption.enabled"
  "CMF_ENCRYPTION_KEY_FILE" "encryption.key.kubernetesSecretName and encryption.key.kubernetesSecretProperty"
  "CMF_ENCRYPTION_KEY_RELOAD_INTERVAL_SECONDS" "encryption.key.reloadIntervalSeconds"
  "CMF_LOG_LEVEL" "log.level" -}}
{{- range $i, $e := .Values.extraEnv -}}
{{- if hasKey $managed $e.name -}}
{{- fail (printf "extraEnv[%d]: %s would override the configuration this chart renders; set %s instead" $i $e.name (get $managed $e.name)) -}}
{{- end -}}
{{- if and $e.valueFrom (hasKey $e.valueFrom "secretKeyRef") -}}
{{- fail (printf "extraEnv[%d] (%s): values from a Secret (valueFrom.secretKeyRef) are refused: no secret is passed to cmf by environment variable; mount it as a file instead" $i $e.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
