package zktest

// A standalone server with ZooKeeper's secure client port (Options.TLS): a
// CA, a server certificate and a client certificate made for the test, and
// a server that requires the client's (ssl.clientAuth=need).

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

const (
	securePort = "2281/tcp"
	tlsDir     = "/tls"
	// The image's ZooKeeper needs netty-codec (SslHandler's base class) and
	// netty-resolver on its class path for TLS: zookeeper.jar's manifest
	// names neither. slf4j-simple makes it log to stderr (the image's
	// default logs nothing), so a refused handshake can be read in the
	// container's log.
	tlsClassPath = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:" +
		"/usr/share/java/netty-resolver.jar:/usr/share/java/slf4j-simple.jar"
)

// TLSFiles are the PEM files a client of a TLS server uses.
type TLSFiles struct {
	// CA signed the server's certificate and the client's.
	CA string
	// Cert and Key are a client certificate the server accepts.
	Cert, Key string
	// OtherCA is a CA that signed nothing the server knows: a client
	// trusting only it must fail the handshake.
	OtherCA string
}

// serverTLS is what a TLS server's container gets.
type serverTLS struct {
	files                TLSFiles
	keystore, truststore string // PEM contents
}

// newServerTLS makes the certificates in dir.
func newServerTLS(dir string) (*serverTLS, error) {
	caCert, caKey, caPEM, err := newCA("zktest CA")
	if err != nil {
		return nil, err
	}
	_, _, otherPEM, err := newCA("zktest other CA")
	if err != nil {
		return nil, err
	}
	serverPEM, serverKey, err := newLeaf(caCert, caKey, "zookeeper", true)
	if err != nil {
		return nil, err
	}
	clientPEM, clientKey, err := newLeaf(caCert, caKey, "hanode", false)
	if err != nil {
		return nil, err
	}
	f := TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "client.pem"),
		Key: filepath.Join(dir, "client-key.pem"), OtherCA: filepath.Join(dir, "other-ca.pem")}
	for path, data := range map[string][]byte{f.CA: caPEM, f.Cert: clientPEM, f.Key: clientKey, f.OtherCA: otherPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	// ZooKeeper's PEM keystore: the certificate and its PKCS#8 key in one file.
	return &serverTLS{files: f, keystore: string(serverPEM) + string(serverKey), truststore: string(caPEM)}, nil
}

func newCA(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// newLeaf makes a certificate signed by ca: a server's names 127.0.0.1 and
// localhost.
func newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, server bool) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		// ZooKeeper uses one keystore for both directions.
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), nil
}

// tlsZooCfg is a standalone server's configuration with both ports: the
// plain one serves the srvr probe.
func (s *Server) tlsZooCfg() string {
	lines := []string{
		"tickTime=" + strconv.Itoa(s.opts.tick()),
		"dataDir=/tmp/zk-data", // the image's /var/lib/zookeeper holds a placeholder myid
		"clientPort=2181",
		"secureClientPort=2281",
		"maxClientCnxns=" + strconv.Itoa(s.opts.MaxClientCnxns),
		"serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
		"ssl.keyStore.location=" + tlsDir + "/keystore.pem",
		"ssl.keyStore.type=PEM",
		"ssl.trustStore.location=" + tlsDir + "/truststore.pem",
		"ssl.trustStore.type=PEM",
		"ssl.clientAuth=need",
		"4lw.commands.whitelist=" + fourLetters,
		"admin.enableServer=false",
	}
	return strings.Join(lines, "\n") + "\n"
}

// tlsRequest turns req into a TLS server's.
func (s *Server) tlsRequest(req *testcontainers.ContainerRequest) {
	req.ExposedPorts = append(req.ExposedPorts, securePort)
	req.Entrypoint = []string{"java", "-cp", tlsClassPath, "org.apache.zookeeper.server.ZooKeeperServerMain"}
	req.Cmd = []string{tlsDir + "/zoo.cfg"}
	req.Files = append(req.Files,
		testcontainers.ContainerFile{Reader: strings.NewReader(s.tlsZooCfg()), ContainerFilePath: tlsDir + "/zoo.cfg", FileMode: 0o644},
		testcontainers.ContainerFile{Reader: strings.NewReader(s.tls.keystore), ContainerFilePath: tlsDir + "/keystore.pem", FileMode: 0o600},
		testcontainers.ContainerFile{Reader: strings.NewReader(s.tls.truststore), ContainerFilePath: tlsDir + "/truststore.pem", FileMode: 0o644},
	)
}

// TLS returns the files a client of a TLS server (Options.TLS) uses; it
// fails the test for a server without TLS.
func (s *Server) TLS(t interface{ Fatalf(string, ...any) }) TLSFiles {
	if s.tls == nil {
		t.Fatalf("zktest: %s has no TLS: start it with Options{TLS: true}", s)
	}
	return s.tls.files
}

func (s *Server) checkTLSOptions() error {
	if s.opts.TLS && !isLocalImage(s.image) {
		return fmt.Errorf("zktest: TLS servers need the local image (%s), not %s", DefaultImage, s.image)
	}
	return nil
}
