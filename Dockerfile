# Static binary in a distroless-style image, running as a non-root user.
#   docker build -t pushgate .
#   docker run -p 9091:9091 -v pushgate-data:/data pushgate
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN make build BINARY=/out/pushgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pushgate /bin/pushgate
# 65532 is the nonroot user of the base image.
USER 65532:65532
VOLUME ["/data"]
WORKDIR /data
EXPOSE 9091
ENTRYPOINT ["/bin/pushgate"]
CMD ["--storage.path=/data"]
