# STAND-IN for nginx:<version> (deploy/local-images.sh): Debian bookworm's nginx-light, laid out
# like the official image (server blocks in /etc/nginx/conf.d/, logs to stdout/stderr, in the
# foreground).
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx-light \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
