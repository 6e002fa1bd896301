# vigil-mariadb — the clusters' accounting database server: Debian 12's
# MariaDB 10.11, for every release. Debian 13's and sid's MariaDB 11.8 server
# breaks slurmdbd 24.11 at start (fatal: _check_mysql_concat_is_sane, client
# error 5027 "Number of columns in result ... exceeds maximum allowed (=0)");
# the same slurmdbd works against 10.11 (checked here, 2026-12-04).
FROM vigil-base:bookworm
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends mariadb-server procps >/dev/null \
 && rm -rf /var/lib/apt/lists/*
