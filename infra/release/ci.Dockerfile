# The image every release step runs in: the gcloud CLI with the Pub/Sub and Firestore
# emulators (and the Java they need), Python with venv, make, terraform and Debian's
# chromium, i.e. what `make test` expects of a machine (README, "Tests").
FROM gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators
ARG TERRAFORM_VERSION=1.9.8
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv python3-pip make git unzip curl chromium \
 && curl -fsSLo /tmp/tf.zip "https://releases.hashicorp.com/terraform/${TERRAFORM_VERSION}/terraform_${TERRAFORM_VERSION}_linux_amd64.zip" \
 && unzip /tmp/tf.zip -d /usr/local/bin && rm /tmp/tf.zip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /workspace
