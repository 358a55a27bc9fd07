{{/* Names and labels. */}}
{{- define "ordercast.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ordercast.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one role: (dict "root" $ "role" "api"). */}}
{{- define "ordercast.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "ordercast.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "ordercast.secretName" -}}
{{ .Values.existingSecret | default (include "ordercast.fullname" .) }}
{{- end -}}

{{/* Regions. A region name as the binary accepts it (core/src/region.rs). */}}
{{- define "ordercast.regionPattern" -}}
^[a-z][a-z0-9-]{0,27}$
{{- end -}}

{{/* Fails with a reason on region settings the processes would refuse at
start (or, for `migrate`, the init container): checked at render time. */}}
{{- define "ordercast.checkRegions" -}}
{{- $r := .Values.region -}}
{{- $pattern := include "ordercast.regionPattern" . -}}
{{- $me := toString $r.name -}}
{{- if not (regexMatch $pattern $me) -}}
{{- fail (printf "region.name %q is not a valid region name: 1 to 28 of a-z, 0-9 and '-', starting with a letter" $me) -}}
{{- end -}}
{{- $existing := (($r.existingPeersSecret | default dict).name | default "") -}}
{{- if and $r.peers $existing -}}
{{- fail "set region.peers or region.existingPeersSecret.name, not both" -}}
{{- end -}}
{{- if and $r.peers (not (kindIs "slice" $r.peers)) -}}
{{- fail "region.peers must be a list of {region, api, database}" -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $i, $p := $r.peers | default (list) -}}
{{- if not (kindIs "map" $p) -}}
{{- fail (printf "region.peers[%d] must be a map with region, api and database" $i) -}}
{{- end -}}
{{- range $key, $_ := $p -}}
{{- if not (has $key (list "region" "api" "database")) -}}
{{- fail (printf "region.peers[%d]: unknown key %q (a peer has region, api and database)" $i $key) -}}
{{- end -}}
{{- end -}}
{{- $name := toString ($p.region | default "") -}}
{{- if not (regexMatch $pattern $name) -}}
{{- fail (printf "region.peers[%d]: %q is not a valid region name: 1 to 28 of a-z, 0-9 and '-', starting with a letter" $i $name) -}}
{{- end -}}
{{- if eq $name $me -}}
{{- fail (printf "region.peers[%d] is %q, this release's own region (region.name): list the other regions only" $i $name) -}}
{{- end -}}
{{- if hasKey $seen $name -}}
{{- fail (printf "region.peers lists %q twice" $name) -}}
{{- end -}}
{{- $_ := set $seen $name true -}}
{{- $api := toString ($p.api | default "") -}}
{{- if not $api -}}
{{- fail (printf "region.peers[%d] (%s) has no api: the base URL of that region's api, e.g. http://ordercast-api.%s.internal:8080" $i $name $name) -}}
{{- end -}}
{{- if not (hasPrefix "http://" $api) -}}
{{- fail (printf "region.peers[%d] (%s): api must be an http:// URL (forwarding runs inside the private network or mesh; https between regions is not supported yet)" $i $name) -}}
{{- end -}}
{{- if and $.Values.migrate.enabled (not $p.database) -}}
{{- fail (printf "region.peers[%d] (%s) has no database: the PostgreSQL URL of that region as this region's PostgreSQL reaches it, which `ordercast migrate` needs (or set migrate.enabled=false)" $i $name) -}}
{{- end -}}
{{- end -}}
{{- range $values := list .Values.env .Values.api.env .Values.edge.env -}}
{{- range $name := list "ORDERCAST_PEERS" "ORDERCAST_REGION" -}}
{{- if hasKey ($values | default dict) $name -}}
{{- fail (printf "%s is set in env: use region.name, region.peers or region.existingPeersSecret (the peers hold passwords and go through a Secret)" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* ORDERCAST_PEERS as the chart makes it from region.peers: a JSON list. */}}
{{- define "ordercast.peersJson" -}}
{{- $peers := list -}}
{{- range .Values.region.peers -}}
{{- $p := dict "region" (toString .region) "api" (toString .api) -}}
{{- with .database }}{{ $_ := set $p "database" (toString .) }}{{ end -}}
{{- $peers = append $peers $p -}}
{{- end -}}
{{- toJson $peers -}}
{{- end -}}

{{- define "ordercast.peersSecretName" -}}
{{ include "ordercast.fullname" . }}-peers
{{- end -}}

{{/* The Secret key holding ORDERCAST_PEERS, as a secretKeyRef; empty
without peers. */}}
{{- define "ordercast.peersSecretRef" -}}
{{- $existing := .Values.region.existingPeersSecret | default dict -}}
{{- if $existing.name -}}
{name: {{ $existing.name | quote }}, key: {{ $existing.key | default "peers.json" | quote }}}
{{- else if .Values.region.peers -}}
{name: {{ include "ordercast.peersSecretName" . }}, key: peers.json}
{{- end -}}
{{- end -}}

{{/* Where ORDERCAST_ADMIN_TOKEN comes from, if anywhere. */}}
{{- define "ordercast.adminTokenRef" -}}
{{- $existing := .Values.admin.existingTokenSecret | default dict -}}
{{- if $existing.name -}}
{name: {{ $existing.name | quote }}, key: {{ $existing.key | default "admin-token" | quote }}}
{{- else if .Values.admin.token -}}
{name: {{ include "ordercast.fullname" . }}-admin, key: admin-token}
{{- end -}}
{{- end -}}

{{/* "true" when this release has peers (region alerts, the migrate Job). */}}
{{- define "ordercast.hasPeers" -}}
{{- if include "ordercast.peersSecretRef" . }}true{{ end -}}
{{- end -}}

{{/* Settings shared by every process, including the migration Job. */}}
{{- define "ordercast.env" -}}
{{- include "ordercast.checkRegions" . -}}
- name: ORDERCAST_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ include "ordercast.secretName" . }}, key: database-url}}
- name: ORDERCAST_REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ include "ordercast.secretName" . }}, key: redis-url}}
{{- if eq .Values.jwt.kind "secret" }}
- name: ORDERCAST_JWT_SECRET
  valueFrom: {secretKeyRef: {name: {{ include "ordercast.secretName" . }}, key: jwt-secret}}
{{- else if eq .Values.jwt.kind "publicKey" }}
- name: ORDERCAST_JWT_PUBLIC_KEY_FILE
  value: /etc/ordercast/jwt/jwt-public-key.pem
{{- else }}
{{- fail "jwt.kind must be `secret` or `publicKey`" }}
{{- end }}
{{- with .Values.jwt.issuer }}
- name: ORDERCAST_JWT_ISSUER
  value: {{ . | quote }}
{{- end }}
- name: ORDERCAST_JWT_AUDIENCE
  value: {{ .Values.jwt.audience | quote }}
- name: ORDERCAST_DATABASE_POOL
  value: {{ .Values.database.pool | quote }}
- name: ORDERCAST_REDIS_CLUSTER
  value: {{ .Values.redis.cluster | quote }}
- name: ORDERCAST_REDIS_PREFIX
  value: {{ .Values.redis.prefix | quote }}
- name: ORDERCAST_REDIS_POOL
  value: {{ .Values.redis.pool | quote }}
- name: ORDERCAST_STREAM_MAXLEN
  value: {{ .Values.redis.streamMaxlen | quote }}
- name: ORDERCAST_LOG_FORMAT
  value: json
- name: ORDERCAST_REGION
  value: {{ .Values.region.name | quote }}
{{- with include "ordercast.peersSecretRef" . }}
- name: ORDERCAST_PEERS
  valueFrom: {secretKeyRef: {{ . }}}
{{- end }}
{{- with .Values.region.forwardTimeout }}
- name: ORDERCAST_FORWARD_TIMEOUT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.region.staleAfter }}
- name: ORDERCAST_REGION_STALE_AFTER
  value: {{ . | quote }}
{{- end }}
{{- if and .Values.tls.caSecret .Values.tls.postgres }}
- name: ORDERCAST_DATABASE_CA_FILE
  value: /etc/ordercast/ca/ca.crt
{{- end }}
{{- if and .Values.tls.caSecret .Values.tls.redis }}
- name: ORDERCAST_REDIS_CA_FILE
  value: /etc/ordercast/ca/ca.crt
{{- end }}
{{- end -}}

{{/* Files from Secrets: the JWT public key (jwt.kind publicKey) and the
CA of PostgreSQL's and Redis's certificates (tls.caSecret). */}}
{{- define "ordercast.volumeMounts" -}}
{{- if or (eq .Values.jwt.kind "publicKey") .Values.tls.caSecret -}}
volumeMounts:
{{- if eq .Values.jwt.kind "publicKey" }}
  - name: jwt
    mountPath: /etc/ordercast/jwt
    readOnly: true
{{- end }}
{{- if .Values.tls.caSecret }}
  - name: ca
    mountPath: /etc/ordercast/ca
    readOnly: true
{{- end }}
{{- end -}}
{{- end -}}

{{- define "ordercast.volumes" -}}
{{- if or (eq .Values.jwt.kind "publicKey") .Values.tls.caSecret -}}
volumes:
{{- if eq .Values.jwt.kind "publicKey" }}
  - name: jwt
    secret:
      secretName: {{ include "ordercast.secretName" . }}
      items:
        - {key: jwt-public-key.pem, path: jwt-public-key.pem}
{{- end }}
{{- if .Values.tls.caSecret }}
  - name: ca
    secret:
      secretName: {{ .Values.tls.caSecret }}
      items:
        - {key: ca.crt, path: ca.crt}
{{- end }}
{{- end -}}
{{- end -}}

{{/* A duration setting in whole seconds, rounded up: one or more of a
whole number and a unit ms, s, m or h, as the binary reads it (humantime):
"30s", "1m30s", "2h", "1500ms". */}}
{{- define "ordercast.seconds" -}}
{{- $d := toString . -}}
{{- if not (regexMatch "^([0-9]+(ms|s|m|h))+$" $d) -}}
{{- fail (printf "%q: a duration is one or more of a whole number and a unit ms, s, m or h, e.g. 30s, 1m30s, 500ms" $d) -}}
{{- end -}}
{{- $ms := 0 -}}
{{- range $part := regexFindAll "[0-9]+(ms|s|m|h)" $d -1 -}}
{{- $unit := regexFind "(ms|s|m|h)$" $part -}}
{{- $n := trimSuffix $unit $part | int64 -}}
{{- $ms = add $ms (mul $n (get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit)) -}}
{{- end -}}
{{- div (add $ms 999) 1000 -}}
{{- end -}}

{{/* The ServiceAccount the pods run as. */}}
{{- define "ordercast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ .Values.serviceAccount.name | default (include "ordercast.fullname" .) }}
{{- else -}}
{{ .Values.serviceAccount.name | default "default" }}
{{- end -}}
{{- end -}}

{{/* The operators' `env` of a process: (dict "root" $ "role" "edge") is
env with edge.env over it, name by name; role "" is env alone (migrate). */}}
{{- define "ordercast.extraEnv" -}}
{{- $values := .root.Values -}}
{{- $env := merge (dict) ($values.env | default dict) -}}
{{- if .role -}}
{{- $env = merge (dict) ((index $values .role).env | default dict) $env -}}
{{- end -}}
{{- range $name := keys $env | sortAlpha }}
- name: {{ $name }}
  value: {{ index $env $name | quote }}
{{- end }}
{{- end -}}

{{/* An alert's runbook: its entry in docs/operations.md, "Alerts"
((dict "root" $ "alert" "OrdercastRedisDegraded")). */}}
{{- define "ordercast.runbook" -}}
{{ .root.Values.prometheusRule.runbookBaseUrl | default "docs/operations.md" }}#{{ lower .alert }}
{{- end -}}
